import Vapor

/// `GET /api/chat/<id>/messages/`: the chat's server-sent event stream. It replays the chat
/// (or, given `Last-Event-ID`, exactly what followed that event), then relays what happens live.
struct ChatStreamController: RouteCollection {
    let bus: any ChatEventBus
    let requireUser: AccessTokenMiddleware

    func boot(routes: any RoutesBuilder) throws {
        routes.grouped("chat").grouped(requireUser).get(":chatID", "messages", use: stream)
    }

    func stream(req: Request) async throws -> Response {
        let chatID = try req.chatID()
        let user = try req.currentUser
        _ = try await Chat.find(chatID, ownedBy: try user.requireID(), on: req.db)
        let resumeFrom = try req.lastEventID()

        // Subscribe before reading the stored messages: whatever happens in between arrives in
        // both, and the stream drops what it already sent by comparing positions.
        let subscription = try bus.subscribe(to: chatID, userID: try user.requireID().lowercased, expiresAt: req.accessTokenExpiry, on: req.eventLoop)
        let replay: StreamReplay
        do {
            replay = try StreamReplay(messages: try await Message.conversation(of: chatID, on: req.db), live: subscription.liveReply, after: resumeFrom)
        } catch {
            bus.cancel(subscription)
            throw error
        }
        let headers: HTTPHeaders = [
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        ]
        let subscriber = subscription.subscriber
        return Response(status: .ok, headers: headers, body: .init(stream: { writer in
            subscriber.attach(writer, replay: replay.bytes, position: replay.position)
        }))
    }
}

/// The start of a stream: what the reader has not seen of the stored chat and the reply in progress.
struct StreamReplay {
    private(set) var bytes = ServerSentEventEncoder.preamble
    /// Where the replay leaves the reader.
    private(set) var position: StreamPosition

    init(messages: [Message], live: LiveReply?, after resume: StreamPosition?) throws {
        position = resume ?? .start
        for message in messages {
            var response = try MessageResponse(message)
            if message.status == .streaming, let live, live.messageID == response.id {
                response.content = live.text
            }
            let end = message.status == .streaming
                ? StreamPosition(sequence: message.sequence, offset: response.content.utf8.count)
                : StreamPosition.complete(message.sequence)
            guard end > position else { continue }

            if let resume, resume.sequence == message.sequence, let delivered = resume.offset {
                // The reader has the beginning of this message: send the rest, and its end if it ended.
                let text = response.content.utf8
                if text.count > delivered, let start = text.index(text.startIndex, offsetBy: delivered, limitedBy: text.endIndex) {
                    let rest = Substring(text[start...])
                    let reached = StreamPosition(sequence: message.sequence, offset: text.count)
                    bytes.writeImmutableBuffer(ServerSentEventEncoder.delta(messageID: response.id, text: rest, position: reached))
                }
                if message.status != .streaming {
                    bytes.writeImmutableBuffer(ServerSentEventEncoder.message("done", response, position: end))
                }
            } else {
                bytes.writeImmutableBuffer(ServerSentEventEncoder.message("message", response, position: end))
            }
            position = end
        }
    }
}

extension Request {
    /// Where a reconnecting stream left off: `Last-Event-ID`, or `?last_event_id=` for clients that
    /// cannot set headers; nil for a new stream.
    func lastEventID() throws -> StreamPosition? {
        guard let raw = headers.first(name: "Last-Event-ID") ?? query[String.self, at: "last_event_id"],
              !raw.trimmingCharacters(in: .whitespaces).isEmpty
        else { return nil }
        guard let position = StreamPosition(eventID: raw.trimmingCharacters(in: .whitespaces)) else {
            throw ChatError.invalidLastEventID(raw)
        }
        return position
    }
}
