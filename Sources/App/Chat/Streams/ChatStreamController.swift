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
        let userID = try req.currentUser.requireID()
        let resumeFrom = try req.lastEventID()

        // The chat must be the caller's before anything is subscribed to (on PostgreSQL a
        // subscription listens to the chat's channel and asks the other instances about it).
        guard try await ChatReads.chat(chatID, ownedBy: userID, messagesFrom: .max, on: req.db) != nil else {
            throw ChatError.chatNotFound
        }
        // Subscribe before reading the stored messages: whatever happens in between arrives in
        // both, and the stream drops what it already sent by comparing positions.
        let session = StreamSession(userID: userID.lowercased, issuedAt: req.accessTokenIssuedAt,
                                    expiresAt: req.apiKey?.expiresAt ?? req.accessTokenExpiry, keyID: req.apiKey?.keyID)
        let subscriber = try await bus.subscribe(to: chatID, session: session, on: req.eventLoop)
        let replay: StreamReplay
        do {
            // A reader reconnecting in the same revision has every message before the one it stopped in.
            guard let read = try await ChatReads.chat(chatID, ownedBy: userID, messagesFrom: resumeFrom?.sequence ?? 0, on: req.db) else {
                throw ChatError.chatNotFound
            }
            var chat = read
            if let resumeFrom, resumeFrom.revision != read.chat.revision, resumeFrom.sequence > 0 {
                // The conversation changed since: it is replayed whole.
                guard let whole = try await ChatReads.chat(chatID, ownedBy: userID, on: req.db) else { throw ChatError.chatNotFound }
                chat = whole
            }
            bus.noteRevision(chat.chat.revision, of: chatID)
            replay = StreamReplay(conversation: ChatConversation.overlay(chat.messages, in: chatID, bus: bus), of: chatID,
                                  revision: chat.chat.revision, after: resumeFrom)
        } catch {
            bus.cancel(subscriber)
            throw error
        }
        let headers: HTTPHeaders = [
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        ]
        // The callback form of the body, not `managedAsyncStream:`, on purpose: an open stream then
        // has no task of its own — the subscriber writes on the connection's event loop whenever
        // events come, and ends the writer itself (with `.end`, on every path, including a failed
        // write when the client left), which is what the managed form would otherwise guarantee.
        // The request lives as long as the stream: once the response starts (every middleware is
        // done with it), it lets go of the account and claims the stream keeps in `session`.
        subscriber.prepare(replay: replay.bytes, position: replay.position)
        return Response(status: .ok, headers: headers, body: .init(stream: { writer in
            req.forgetIdentity()
            subscriber.attach(writer)
        }))
    }
}

extension Request {
    /// Where a reconnecting stream left off: `Last-Event-ID`, or `?last_event_id=` for clients that
    /// cannot set headers (the header wins when both are sent, but each must be an event id);
    /// nil for a new stream.
    func lastEventID() throws -> StreamPosition? {
        let header = try Self.streamPosition(headers.first(name: "Last-Event-ID"))
        let query = try Self.streamPosition(query[String.self, at: "last_event_id"])
        return header ?? query
    }

    /// An event id as a client sent it; nil when absent or blank.
    private static func streamPosition(_ raw: String?) throws -> StreamPosition? {
        guard let raw, !raw.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
        guard let position = StreamPosition(eventID: raw.trimmingCharacters(in: .whitespaces)) else {
            throw ChatError.invalidLastEventID(raw)
        }
        return position
    }
}
