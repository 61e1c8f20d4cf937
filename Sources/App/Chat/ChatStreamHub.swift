import Foundation
import NIOConcurrencyHelpers
import Vapor

/// The in-process ``ChatEventBus``: per chat, its open streams and the text of its reply in
/// progress. Each event is encoded once and the same bytes handed to every stream. A stream's
/// backlog is bounded: a reader that falls `maxPendingEvents` behind is disconnected (it resumes by
/// event id). State is split into shards by chat so that replies in different chats rarely contend.
final class ChatStreamHub: ChatEventBus {
    private struct Subscriber {
        let continuation: AsyncStream<StreamFrame>.Continuation
        let expiresAt: Date?
    }

    private struct Channel {
        var subscribers: [Int: Subscriber] = [:]
        var liveReply: LiveReply?
        var isEmpty: Bool { subscribers.isEmpty && liveReply == nil }
    }

    private struct Shard {
        var channels: [UUID: Channel] = [:]
        var nextSubscriberID = 0
        var isShutDown = false
    }

    private let shards: [NIOLockedValueBox<Shard>]
    private let maxPendingEvents: Int

    init(maxPendingEvents: Int, shardCount: Int = 16) {
        self.maxPendingEvents = maxPendingEvents
        shards = (0..<shardCount).map { _ in NIOLockedValueBox(Shard()) }
    }

    private func shard(_ chat: UUID) -> NIOLockedValueBox<Shard> {
        shards[Int(chat.uuid.15) % shards.count]
    }

    // MARK: Subscribing

    func subscribe(to chat: UUID, expiresAt: Date?) -> ChatSubscription {
        let (frames, continuation) = AsyncStream.makeStream(of: StreamFrame.self, bufferingPolicy: .bufferingOldest(maxPendingEvents))
        let shard = shard(chat)
        let registration: (id: Int, live: LiveReply?)? = shard.withLockedValue { state in
            guard !state.isShutDown else { return nil }
            let id = state.nextSubscriberID
            state.nextSubscriberID += 1
            state.channels[chat, default: Channel()].subscribers[id] = Subscriber(continuation: continuation, expiresAt: expiresAt)
            return (id, state.channels[chat]?.liveReply)
        }
        guard let registration else {
            continuation.yield(.end(Self.shuttingDown))
            continuation.finish()
            return ChatSubscription(liveReply: nil, frames: frames)
        }
        continuation.onTermination = { [weak self] _ in
            self?.unsubscribe(chat, registration.id)
        }
        return ChatSubscription(liveReply: registration.live, frames: frames)
    }

    private func unsubscribe(_ chat: UUID, _ id: Int) {
        shard(chat).withLockedValue { state in
            state.channels[chat]?.subscribers[id] = nil
            if state.channels[chat]?.isEmpty == true { state.channels[chat] = nil }
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

    func replyDelta(_ text: String, chat: UUID) {
        let overflowed: [AsyncStream<StreamFrame>.Continuation] = shard(chat).withLockedValue { state in
            // Taken out and put back so that the text is uniquely held and grows in place.
            guard var channel = state.channels.removeValue(forKey: chat) else { return [] }
            defer { state.channels[chat] = channel }
            guard var live = channel.liveReply.take() else { return [] }
            live.text += text
            let position = live.position
            let bytes = ServerSentEventEncoder.delta(messageID: live.messageID, text: text[...], position: position)
            channel.liveReply = live
            return Self.broadcast(.event(position, bytes), in: &channel)
        }
        overflowed.forEach { $0.finish() }
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
        let channel = shard(chat).withLockedValue { $0.channels.removeValue(forKey: chat) }
        for subscriber in channel?.subscribers.values ?? [:].values {
            subscriber.continuation.yield(.end(Self.chatDeleted))
            subscriber.continuation.finish()
        }
    }

    func liveReply(in chat: UUID) -> LiveReply? {
        shard(chat).withLockedValue { $0.channels[chat]?.liveReply }
    }

    // MARK: Time and shutdown

    /// Ends streams whose access token has expired and, when `sendKeepAlive`, sends every other
    /// stream a keep-alive comment (which also finds readers that have gone away).
    func tick(now: Date, sendKeepAlive: Bool) {
        var finished: [AsyncStream<StreamFrame>.Continuation] = []
        for shard in shards {
            shard.withLockedValue { state in
                var gone: [(chat: UUID, subscriber: Int)] = []
                for (chat, channel) in state.channels {
                    for (id, subscriber) in channel.subscribers {
                        if let expiresAt = subscriber.expiresAt, expiresAt <= now {
                            subscriber.continuation.yield(.end(Self.tokenExpired))
                            gone.append((chat, id))
                            finished.append(subscriber.continuation)
                        } else if sendKeepAlive, case .dropped = subscriber.continuation.yield(.keepAlive) {
                            gone.append((chat, id))
                            finished.append(subscriber.continuation)
                        }
                    }
                }
                for (chat, id) in gone {
                    state.channels[chat]?.subscribers[id] = nil
                    if state.channels[chat]?.isEmpty == true { state.channels[chat] = nil }
                }
            }
        }
        finished.forEach { $0.finish() }
    }

    /// Ends every stream (clients reconnect elsewhere) and refuses new ones.
    func shutdown() {
        var finished: [AsyncStream<StreamFrame>.Continuation] = []
        for shard in shards {
            shard.withLockedValue { state in
                state.isShutDown = true
                for channel in state.channels.values {
                    for subscriber in channel.subscribers.values {
                        subscriber.continuation.yield(.end(Self.shuttingDown))
                        finished.append(subscriber.continuation)
                    }
                }
                state.channels.removeAll()
            }
        }
        finished.forEach { $0.finish() }
    }

    /// Open streams, over all chats.
    var subscriberCount: Int {
        shards.reduce(0) { total, shard in
            total + shard.withLockedValue { $0.channels.values.reduce(0) { $0 + $1.subscribers.count } }
        }
    }

    // MARK: Helpers

    private func publish(_ frame: StreamFrame, to chat: UUID, update: (inout Channel) -> Void) {
        let overflowed: [AsyncStream<StreamFrame>.Continuation] = shard(chat).withLockedValue { state in
            var channel = state.channels.removeValue(forKey: chat) ?? Channel()
            update(&channel)
            let dropped = Self.broadcast(frame, in: &channel)
            if !channel.isEmpty { state.channels[chat] = channel }
            return dropped
        }
        overflowed.forEach { $0.finish() }
    }

    /// Hands `frame` to every subscriber; those whose backlog is full are removed and returned, to
    /// be finished once the lock is released (finishing runs their termination handler).
    private static func broadcast(_ frame: StreamFrame, in channel: inout Channel) -> [AsyncStream<StreamFrame>.Continuation] {
        var dropped: [AsyncStream<StreamFrame>.Continuation] = []
        for (id, subscriber) in channel.subscribers {
            if case .dropped = subscriber.continuation.yield(frame) {
                channel.subscribers[id] = nil
                dropped.append(subscriber.continuation)
            }
        }
        return dropped
    }

    static let chatDeleted = HTTPProblem(.gone, title: "Chat deleted", detail: "This chat was deleted; its stream is over.")
    static let tokenExpired = HTTPProblem(.unauthorized, title: "Token expired",
                                          detail: "The access token of this stream has expired; reconnect with a fresh one and Last-Event-ID.")
    static let shuttingDown = HTTPProblem(.serviceUnavailable, title: "Shutting down",
                                          detail: "This server is stopping; reconnect with Last-Event-ID.")
}
