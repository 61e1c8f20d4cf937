import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Vapor

/// The in-process ``ChatEventBus``: per chat, its open streams and the text of its reply in
/// progress. Each event is encoded once and the same bytes handed to every stream's event loop.
/// State is split into shards by chat so that replies in different chats rarely contend.
final class ChatStreamHub: ChatEventBus {
    private struct Channel {
        var subscribers: [Int: StreamSubscriber] = [:]
        var liveReply: LiveReply?
        var isEmpty: Bool { subscribers.isEmpty && liveReply == nil }
    }

    private struct Shard {
        var channels: [UUID: Channel] = [:]
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
    /// A stream whose response has not started after this long is dropped (its client went away).
    static let unstartedLimit: TimeInterval = 60

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

    // MARK: Subscribing

    func subscribe(to chat: UUID, userID: String, expiresAt: Date?, on eventLoop: any EventLoop) throws(ChatError) -> ChatSubscription {
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
            id: id, chat: chat, userID: userID, eventLoop: eventLoop, expiresAt: expiresAt, createdAt: clock.now(),
            maxPendingWrites: maxPendingEvents, metrics: metrics, onEnd: { [weak self] in self?.remove($0) }
        )
        let (accepted, live): (Bool, LiveReply?) = shard(chat).withLockedValue { state in
            guard !state.isShutDown else { return (false, nil) }
            state.channels[chat, default: Channel()].subscribers[id] = subscriber
            return (true, state.channels[chat]?.liveReply)
        }
        if accepted {
            metrics.streamOpened()
        } else {
            release(userID)
            subscriber.end(with: Self.shuttingDown)
        }
        return ChatSubscription(liveReply: live, subscriber: subscriber)
    }

    func cancel(_ subscription: ChatSubscription) {
        subscription.subscriber.end()
        remove(subscription.subscriber)
    }

    private func remove(_ subscriber: StreamSubscriber) {
        let removed = shard(subscriber.chat).withLockedValue { state in
            defer { if state.channels[subscriber.chat]?.isEmpty == true { state.channels[subscriber.chat] = nil } }
            return state.channels[subscriber.chat]?.subscribers.removeValue(forKey: subscriber.id) != nil
        }
        guard removed else { return }
        metrics.streamClosed()
        release(subscriber.userID)
    }

    /// Gives back a place among the user's open streams.
    private func release(_ userID: String) {
        openStreams.withLockedValue { counts in
            counts[userID, default: 1] -= 1
            if counts[userID] == 0 { counts[userID] = nil }
        }
    }

    // MARK: Publishing

    func messageStored(_ message: MessageResponse) {
        guard let chat = UUID(uuidString: message.chatID) else { return }
        let live = message.status == .streaming
            ? LiveReply(messageID: message.id, sequence: message.sequence, text: message.content) : nil
        let position = live?.position ?? .complete(message.sequence)
        let frame = StreamFrame.event(position, ServerSentEventEncoder.message("message", message, position: position))
        publish(frame, to: chat) { channel in
            if let live { channel.liveReply = live }
        }
    }

    func replyDelta(_ text: String, chat: UUID, receivedAt: ContinuousClock.Instant) {
        shard(chat).withLockedValue { state in
            // Taken out and put back so that the text is uniquely held and grows in place.
            guard var channel = state.channels.removeValue(forKey: chat) else { return }
            defer { state.channels[chat] = channel }
            guard var live = channel.liveReply.take() else { return }
            live.text += text
            let position = live.position
            let bytes = ServerSentEventEncoder.delta(messageID: live.messageID, text: text[...], position: position)
            channel.liveReply = live
            for subscriber in channel.subscribers.values { subscriber.deliver(.event(position, bytes, receivedAt: receivedAt)) }
        }
    }

    func replyEnded(_ message: MessageResponse) {
        guard let chat = UUID(uuidString: message.chatID) else { return }
        let position = StreamPosition.complete(message.sequence)
        let frame = StreamFrame.event(position, ServerSentEventEncoder.message("done", message, position: position))
        publish(frame, to: chat) { channel in
            if channel.liveReply?.messageID == message.id { channel.liveReply = nil }
        }
    }

    func chatDeleted(_ chat: UUID) {
        let subscribers = shard(chat).withLockedValue { state in
            state.channels[chat]?.liveReply = nil
            return Array(state.channels[chat]?.subscribers.values ?? [:].values)
        }
        subscribers.forEach { $0.end(with: Self.chatDeleted) }
    }

    func liveReply(in chat: UUID) -> LiveReply? {
        shard(chat).withLockedValue { $0.channels[chat]?.liveReply }
    }

    // MARK: Time and shutdown

    /// Ends streams whose access token has expired, drops streams whose response never started,
    /// and, when `sendKeepAlive`, sends every other stream a keep-alive comment (which also finds
    /// readers that have gone away).
    func tick(now: Date, sendKeepAlive: Bool) {
        for shard in shards {
            shard.withLockedValue { state in
                for channel in state.channels.values {
                    for subscriber in channel.subscribers.values {
                        if let expiresAt = subscriber.expiresAt, expiresAt <= now {
                            subscriber.end(with: Self.tokenExpired)
                        } else if !subscriber.isAttached, now.timeIntervalSince(subscriber.createdAt) > Self.unstartedLimit {
                            subscriber.end()
                        } else if sendKeepAlive {
                            subscriber.deliver(.keepAlive)
                        }
                    }
                }
            }
        }
    }

    /// Ends every stream (clients reconnect elsewhere) and refuses new ones.
    func shutdown() {
        var subscribers: [StreamSubscriber] = []
        for shard in shards {
            shard.withLockedValue { state in
                state.isShutDown = true
                subscribers += state.channels.values.flatMap { $0.subscribers.values }
                for chat in state.channels.keys { state.channels[chat]?.liveReply = nil }
            }
        }
        subscribers.forEach { $0.end(with: Self.shuttingDown) }
    }

    /// Open streams, over all chats.
    var subscriberCount: Int {
        shards.reduce(0) { total, shard in
            total + shard.withLockedValue { $0.channels.values.reduce(0) { $0 + $1.subscribers.count } }
        }
    }

    // MARK: Helpers

    private func publish(_ frame: StreamFrame, to chat: UUID, update: (inout Channel) -> Void) {
        shard(chat).withLockedValue { state in
            var channel = state.channels.removeValue(forKey: chat) ?? Channel()
            update(&channel)
            for subscriber in channel.subscribers.values { subscriber.deliver(frame) }
            if !channel.isEmpty { state.channels[chat] = channel }
        }
    }

    static let chatDeleted = HTTPProblem(.gone, title: "Chat deleted", detail: "This chat was deleted; its stream is over.")
    static let tokenExpired = HTTPProblem(.unauthorized, title: "Token expired",
                                          detail: "The access token of this stream has expired; reconnect with a fresh one and Last-Event-ID.")
    static let shuttingDown = HTTPProblem(.serviceUnavailable, title: "Shutting down",
                                          detail: "This server is stopping; reconnect with Last-Event-ID.")
}
