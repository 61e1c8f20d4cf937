import Fluent
import Foundation
import NIOCore

/// What a reader has not seen of a chat, as SSE bytes: every message after its position, the rest
/// of a reply it has the beginning of, and the `done` of a reply that ended meanwhile.
///
/// The start of every stream (after `Last-Event-ID` when it reconnects), and how a stream catches
/// up after events could not reach it.
struct StreamReplay {
    private(set) var bytes: ByteBuffer
    /// Where the replay leaves the reader.
    private(set) var position: StreamPosition
    /// How many events it holds.
    private(set) var events = 0

    /// `conversation` (at `revision`) as ``ChatConversation/overlay(_:in:bus:)`` shows it: stored
    /// messages in order, a reply in progress with its text so far. A reader resuming from another
    /// revision's event (the conversation changed since) gets it whole, after a `conversation`
    /// event that says so; so does every reader when `announceChange` (the change happened live).
    init(conversation: [MessageResponse], of chat: UUID, revision: Int, after resume: StreamPosition?, preamble: Bool = true,
         announceChange: Bool = false) {
        bytes = preamble ? ServerSentEventEncoder.preamble : ByteBuffer()
        position = .start(of: revision)
        if let resume, resume.revision == revision {
            position = resume
        } else if resume != nil || announceChange {
            bytes.writeImmutableBuffer(ServerSentEventEncoder.conversationChanged(chat: chat, revision: revision, position: position))
            events += 1
        }
        for message in conversation {
            let end = message.status == .streaming
                ? ReplyLayout(reasoning: message.reasoning, text: message.content, toolCalls: message.toolCalls)
                    .end(sequence: message.sequence).in(revision)
                : StreamPosition.complete(message.sequence, revision: revision)
            guard end > position else { continue }

            if position.sequence == message.sequence, position.offset != nil {
                // The reader has the beginning of this message: send the rest of each segment from
                // where it stands, and its end if it ended.
                sendRest(of: message, revision: revision)
                if message.status != .streaming {
                    bytes.writeImmutableBuffer(ServerSentEventEncoder.message("done", message, position: end))
                    events += 1
                }
            } else {
                bytes.writeImmutableBuffer(ServerSentEventEncoder.message("message", message, position: end))
                events += 1
            }
            position = end
        }
    }

    /// The segments of `message` after ``position`` (which is inside it), laid out as
    /// ``ReplyLayout`` says: the rest of each piece of reasoning and answer as `reasoning` and
    /// `delta` events, and each call and result not yet sent as `tool_call` and `tool_result`.
    private mutating func sendRest(of message: MessageResponse, revision: Int) {
        let layout = ReplyLayout(reasoning: message.reasoning, text: message.content, toolCalls: message.toolCalls)
        for (segment, part) in layout.segments.enumerated() where segment >= position.segment {
            let delivered = segment == position.segment ? position.offset ?? 0 : 0
            let reached = StreamPosition(revision: revision, sequence: message.sequence, segment: segment, offset: ReplyLayout.length(of: part))
            let event: ByteBuffer
            switch part {
            case .reasoning(let range), .answer(let range):
                let kind: ReplyDelta.Kind = if case .reasoning = part { .reasoning } else { .answer }
                let whole = (kind == .reasoning ? message.reasoning ?? "" : message.content).utf8
                // Text the layout places past what is known here ends the catch-up: what follows must not
                // be sent ahead of it (a later save or piece brings it).
                guard range.upperBound <= whole.count else { return }
                guard range.count > delivered else { continue }
                let start = whole.index(whole.startIndex, offsetBy: range.lowerBound + delivered)
                let end = whole.index(whole.startIndex, offsetBy: range.upperBound)
                event = ServerSentEventEncoder.delta(kind, messageID: message.id, text: Substring(whole[start..<end]), position: reached)
            case .toolCall(let index):
                guard delivered < 1 else { continue }
                event = ServerSentEventEncoder.toolCall(message.toolCalls[index], messageID: message.id, position: reached)
            case .toolResult(let index):
                guard delivered < 1 else { continue }
                event = ServerSentEventEncoder.toolResult(message.toolCalls[index], messageID: message.id, position: reached)
            }
            bytes.writeImmutableBuffer(event)
            events += 1
            position = reached
        }
    }
}

/// A chat's messages as a reader sees them now: as stored, with the text so far of a reply in
/// progress. The one place where the live text is laid over the stored one.
enum ChatConversation {
    /// `stored` (a chat's messages as ``ChatReads`` reads them), with the live text of the reply
    /// running in `chatID` laid over its stored beginning.
    static func overlay(_ stored: [MessageResponse], in chatID: UUID, bus: any ChatEventBus) -> [MessageResponse] {
        // Read after the stored messages: the live text is at least as new as any saved text.
        guard let live = bus.liveReply(in: chatID) else { return stored }
        return stored.map { message in
            guard message.status == .streaming, live.messageID == message.id, live.covers(message) else { return message }
            var shown = message
            shown.content = live.text
            shown.reasoning = live.reasoning
            shown.toolCalls = live.toolCalls
            return shown
        }
    }
}
