import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Vapor

/// The streams open in this process, by chat: ``ChatBus`` hands each event to the hub, which
/// encodes it once and hands the same bytes to every stream of its chat. State is split into
/// shards by chat so that replies in different chats rarely contend.
final class ChatStreamHub: Sendable {
    private struct Shard {
        var streams: [UUID: [Int: StreamSubscriber]] = [:]
        /// The current revision of each chat with streams (what its event ids carry).
        var revisions: [UUID: Int] = [:]
        var isShutDown = false
    }

    private let shards: [NIOLockedValueBox<Shard>]
    private let nextSubscriberID = NIOLockedValueBox(0)
    /// Streams open per user.
    private let openStreams = NIOLockedValueBox<[String: Int]>([:])
    private let maxPendingEvents: Int
    private let maxStreamsPerUser: Int
    private let clock: any WallClock
    private let metrics: AppMetrics
    private let idleHandler = HandlerSlot<UUID>()

    /// Called when the last stream of a chat in this process has closed.
    var onChatIdle: (@Sendable (UUID) -> Void)? {
        get { idleHandler.handler }
        set { idleHandler.set(newValue) }
    }

    init(maxPendingEvents: Int, maxStreamsPerUser: Int, clock: any WallClock, metrics: AppMetrics, shardCount: Int = 16) {
        self.maxPendingEvents = maxPendingEvents
        self.maxStreamsPerUser = maxStreamsPerUser
        self.clock = clock
        self.metrics = metrics
        shards = (0..<shardCount).map { _ in NIOLockedValueBox(Shard()) }
    }

    private func shard(_ chat: UUID) -> NIOLockedValueBox<Shard> {
        shards[Int(chat.uuid.15) % shards.count]
    }

    // MARK: Streams

    func subscribe(to chat: UUID, session: StreamSession, on eventLoop: any EventLoop) throws(ChatError) -> StreamSubscriber {
        let userID = session.userID
        let admitted = openStreams.withLockedValue { counts in
            guard counts[userID, default: 0] < maxStreamsPerUser else { return false }
            counts[userID, default: 0] += 1
            return true
        }
        guard admitted else { throw ChatError.tooManyStreams(maxStreamsPerUser) }
        let id = nextSubscriberID.withLockedValue { next in
            defer { next += 1 }
            return next
        }
        let subscriber = StreamSubscriber(
            id: id, chat: chat, session: session, eventLoop: eventLoop, createdAt: clock.now(),
            maxPendingEvents: maxPendingEvents, metrics: metrics, onEnd: { [weak self] in self?.remove($0) }
        )
        let accepted = shard(chat).withLockedValue { state in
            guard !state.isShutDown else { return false }
            state.streams[chat, default: [:]][id] = subscriber
            return true
        }
        guard accepted else {
            release(userID)
            subscriber.end()
            throw ChatError.shuttingDown
        }
        metrics.streamOpened()
        return subscriber
    }

    func cancel(_ subscriber: StreamSubscriber) {
        subscriber.end()
        remove(subscriber)
    }

    private func remove(_ subscriber: StreamSubscriber) {
        let (removed, idle) = shard(subscriber.chat).withLockedValue { state -> (Bool, Bool) in
            let removed = state.streams[subscriber.chat]?.removeValue(forKey: subscriber.id) != nil
            guard state.streams[subscriber.chat]?.isEmpty == true else { return (removed, false) }
            state.streams[subscriber.chat] = nil
            state.revisions[subscriber.chat] = nil
            return (removed, true)
        }
        guard removed else { return }
        metrics.streamClosed()
        release(subscriber.userID)
        if idle { onChatIdle?(subscriber.chat) }
    }

    /// Gives back a place among the user's open streams.
    private func release(_ userID: String) {
        openStreams.withLockedValue { counts in
            counts[userID, default: 1] -= 1
            if counts[userID] == 0 { counts[userID] = nil }
        }
    }

    /// Whether any stream is open on `chat` in this process.
    func hasStreams(on chat: UUID) -> Bool {
        shard(chat).withLockedValue { $0.streams[chat] != nil }
    }

    var openStreamCount: Int {
        shards.reduce(0) { total, shard in total + shard.withLockedValue { $0.streams.values.reduce(0) { $0 + $1.count } } }
    }

    // MARK: Publishing

    func messageStored(_ message: MessageResponse) {
        let position = message.status == .streaming
            ? StreamPosition(sequence: message.sequence, offset: message.content.utf8.count) : .complete(message.sequence)
        publish("message", message, at: position)
    }

    func replyDelta(_ delta: ReplyDelta) {
        publish(to: delta.chatID) { revision in
            let end = delta.end.in(revision)
            return .delta(delta, end: end, bytes: ServerSentEventEncoder.delta(delta.kind, messageID: delta.messageID, text: delta.text[...],
                                                                              position: end))
        }
    }

    func replyEnded(_ message: MessageResponse) {
        publish("done", message, at: .complete(message.sequence))
    }

    func chatDeleted(_ chat: UUID) {
        publish(.end(Self.chatDeleted), to: chat)
    }

    func conversationChanged(in chat: UUID, revision: Int, conversation: [MessageResponse]) {
        shard(chat).withLockedValue { state in
            guard let streams = state.streams[chat] else { return }
            state.revisions[chat] = max(state.revisions[chat] ?? 0, revision)
            streams.values.forEach { $0.deliver(.reset(revision: revision, conversation: conversation)) }
        }
    }

    func chatRenamed(_ chat: UUID, title: String) {
        publish(.renamed(title: title), to: chat)
    }

    func noteRevision(_ revision: Int, of chat: UUID) {
        shard(chat).withLockedValue { state in
            guard state.streams[chat] != nil else { return }
            state.revisions[chat] = max(state.revisions[chat] ?? 0, revision)
        }
    }

    /// Hands `frame` to every stream of `chat` in this process, in publish order.
    func publish(_ frame: StreamFrame, to chat: UUID) {
        shard(chat).withLockedValue { state in
            state.streams[chat]?.values.forEach { $0.deliver(frame) }
        }
    }

    /// Builds a frame for the chat's current revision (once, whatever the number of its streams)
    /// and hands it to each of them, under the lock that orders the chat's events.
    private func publish(to chat: UUID, _ frame: (_ revision: Int) -> StreamFrame) {
        shard(chat).withLockedValue { state in
            guard let streams = state.streams[chat] else { return }
            let built = frame(state.revisions[chat] ?? 0)
            streams.values.forEach { $0.deliver(built) }
        }
    }

    /// Encodes `message` once for every stream of its chat.
    private func publish(_ event: String, _ message: MessageResponse, at position: StreamPosition) {
        guard let chat = UUID(hyphenated: message.chatID) else { return }
        publish(to: chat) { revision in
            let position = position.in(revision)
            return .event(position, ServerSentEventEncoder.message(event, message, position: position))
        }
    }

    // MARK: Time and shutdown

    func tick(now: Date, sendKeepAlive: Bool) {
        for shard in shards {
            shard.withLockedValue { state in
                for streams in state.streams.values {
                    streams.values.forEach { $0.deliver(.tick(now: now, keepAlive: sendKeepAlive)) }
                }
            }
        }
    }

    func shutdown() async {
        var subscribers: [StreamSubscriber] = []
        for shard in shards {
            shard.withLockedValue { state in
                state.isShutDown = true
                subscribers += state.streams.values.flatMap(\.values)
            }
        }
        subscribers.forEach { $0.end(with: Self.shuttingDown) }
    }

    /// Ends, with an `error` event, the streams of `userID` whose session `ends` says so.
    func endStreams(of userID: String, where ends: (StreamSession) -> Bool) {
        for shard in shards {
            shard.withLockedValue { state in
                for streams in state.streams.values {
                    for subscriber in streams.values where subscriber.userID == userID {
                        if ends(subscriber.session) { subscriber.end(with: Self.signedOut) }
                    }
                }
            }
        }
    }

    /// The users with streams open in this process.
    var usersWithStreams: [String] { openStreams.withLockedValue { Array($0.keys) } }

    static let signedOut = HTTPProblem(.unauthorized, title: "Signed out",
                                       detail: "This session has been signed out; sign in again and reconnect with Last-Event-ID.")
    static let chatDeleted = HTTPProblem(.gone, title: "Chat deleted", detail: "This chat was deleted; its stream is over.")
    static let tokenExpired = HTTPProblem(.unauthorized, title: "Token expired",
                                          detail: "The access token of this stream has expired; reconnect with a fresh one and Last-Event-ID.")
    static let shuttingDown = HTTPProblem(.serviceUnavailable, title: "Shutting down",
                                          detail: "This server is stopping; reconnect with Last-Event-ID.")
}
