import Foundation
import NIOCore

/// How a chat's events reach every stream open on it. The reply runner and the chat service
/// publish; each `GET /api/chat/<id>/messages/` subscribes. ``ChatStreamHub`` does this within one
/// process; a bus over PostgreSQL `LISTEN/NOTIFY` could do it across instances behind the same calls.
protocol ChatEventBus: Sendable {
    /// Opens a subscription to `chat` for a stream served on `eventLoop`: the reply in progress at
    /// this instant (if any), and a subscriber that receives every frame published after. A
    /// subscription past `expiresAt` ends with an `error` event.
    /// Throws ``ChatError/tooManyStreams`` when `userID` holds the most streams allowed.
    func subscribe(to chat: UUID, userID: String, expiresAt: Date?, on eventLoop: any EventLoop) throws(ChatError) -> ChatSubscription
    /// Drops a subscription whose response never started.
    func cancel(_ subscription: ChatSubscription)

    /// A message was stored (a user message), or an assistant reply began (status `streaming`).
    func messageStored(_ message: MessageResponse)
    /// The next piece of the reply in progress in `chat`.
    func replyDelta(_ text: String, chat: UUID, receivedAt: ContinuousClock.Instant)
    /// The reply ended and is stored: `complete`, `failed` or `cancelled`.
    func replyEnded(_ message: MessageResponse)
    /// The chat is gone: its streams end with an `error` event.
    func chatDeleted(_ chat: UUID)
    /// The text so far of the reply in progress in `chat`, if this bus knows it.
    func liveReply(in chat: UUID) -> LiveReply?
}

/// A reply as it streams: which message, and its text so far.
struct LiveReply: Sendable, Equatable {
    var messageID: String
    var sequence: Int
    var text: String

    var position: StreamPosition { StreamPosition(sequence: sequence, offset: text.utf8.count) }
}

/// What a stream starts from: the reply in progress when it subscribed, and the subscriber that
/// receives what follows.
struct ChatSubscription: Sendable {
    var liveReply: LiveReply?
    var subscriber: StreamSubscriber
}
