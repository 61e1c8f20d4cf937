import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The ``ChatEventBus``: a chat's events reach every stream open on it — in this process through
/// the ``ChatStreamHub``, and on every other instance over an ``InstanceTransport`` when there is
/// one (PostgreSQL's `LISTEN/NOTIFY`; none for a single instance).
///
/// An instance with streams on a chat whose reply runs elsewhere follows that reply
/// (``ReplyFollower``): it keeps the text so far, so that a stream joining later replays it, and
/// holds each event until what comes before it is known. Positions (message, byte offset) make
/// event ids the same on every instance, so `Last-Event-ID` from one resumes on another exactly.
/// What other instances say is handled in ``ChatBus+Receiving.swift``.
final class ChatBus: ChatEventBus {
    let hub: ChatStreamHub
    let replies: RunningReplies
    let store: ReplyStore
    let transport: (any InstanceTransport)?
    let logger: Logger
    let followers = NIOLockedValueBox<[UUID: ReplyFollower]>([:])
    /// Reads of the database that what another instance said calls for; shutdown ends them.
    let work = OwnedTasks()
    /// Told when something cached changed on another instance (nil: anything may have, while this one could not hear).
    let cachedChangesHandler = HandlerSlot<CachedChange?>()

    init(hub: ChatStreamHub, replies: RunningReplies, store: ReplyStore, transport: (any InstanceTransport)?, logger: Logger) {
        self.hub = hub
        self.replies = replies
        self.store = store
        self.transport = transport
        self.logger = logger
        hub.onChatIdle = { [weak self] chat in self?.stopFollowing(chat) }
    }

    private let started = NIOLockedValueBox(false)

    /// Connects to the other instances: when the server starts, or when a command needs to tell
    /// them something (once; its process's shutdown sends what is queued).
    func start() async {
        let first = started.withLockedValue { started in
            defer { started = true }
            return !started
        }
        guard first else { return }
        await transport?.start(
            receive: { [weak self] notification, sender in self?.received(notification, from: sender) },
            reconnected: { [weak self] in self?.lostTrack() }
        )
    }

    // MARK: Streams

    func subscribe(to chat: UUID, session: StreamSession, on eventLoop: any EventLoop) async throws -> StreamSubscriber {
        let subscriber = try hub.subscribe(to: chat, session: session, on: eventLoop)
        guard let transport else { return subscriber }
        let (follower, isNew) = followers.withLockedValue { followers -> (ReplyFollower, Bool) in
            if let existing = followers[chat] { return (existing, false) }
            let follower = ReplyFollower(chat: chat, host: self)
            followers[chat] = follower
            return (follower, true)
        }
        if isNew { follower.startListening { await transport.follow(chat) } }
        // Events of the chat reach this instance from now on (or the listener is down, and it
        // catches up when it comes back): the caller may read the stored chat.
        await follower.listening()
        return subscriber
    }

    func cancel(_ subscriber: StreamSubscriber) { hub.cancel(subscriber) }

    private func stopFollowing(_ chat: UUID) {
        guard followers.withLockedValue({ $0.removeValue(forKey: chat) }) != nil else { return }
        transport?.unfollow(chat)
    }

    /// Chats this instance follows now.
    var followedChats: [UUID] { followers.withLockedValue { Array($0.keys) } }

    // MARK: Publishing

    func messageStored(_ message: MessageResponse) {
        hub.messageStored(message)
        guard let chat = UUID(hyphenated: message.chatID), let id = UUID(hyphenated: message.id) else { return }
        transport?.send(.messageStored(chat: chat, message: id))
    }

    func replyDelta(_ delta: ReplyDelta) {
        hub.replyDelta(delta)
        // Text only where another instance follows the chat: it learned how far the reply was
        // when it started following (a sync), and gets every piece from then on.
        guard let transport, transport.isFollowedElsewhere(delta.chatID) else { return }
        BusNotification.deltas(delta).forEach(transport.send)
    }

    func replyProgressed(_ message: MessageResponse) {
        guard let chat = UUID(hyphenated: message.chatID) else { return }
        hub.publish(.catchUp([message]), to: chat)
    }

    func replySaved(chat: UUID, message: UUID, bytes: Int) {
        transport?.send(.replySaved(chat: chat, message: message, bytes: bytes))
    }

    func replyEnded(_ message: MessageResponse) {
        hub.replyEnded(message)
        guard let chat = UUID(hyphenated: message.chatID), let id = UUID(hyphenated: message.id) else { return }
        transport?.send(.replyEnded(chat: chat, message: id))
    }

    func chatDeleted(_ chat: UUID) {
        replies.stop(in: chat, .chatDeleted)
        hub.chatDeleted(chat)
        transport?.send(.chatDeleted(chat: chat))
    }

    func conversationChanged(in chat: UUID, revision: Int, conversation: [MessageResponse]) {
        hub.conversationChanged(in: chat, revision: revision, conversation: conversation)
        transport?.send(.conversationChanged(chat: chat, revision: revision))
    }

    func chatRenamed(_ chat: UUID, title: String) {
        hub.chatRenamed(chat, title: title)
        transport?.send(.chatRenamed(chat: chat, title: title))
    }

    func noteRevision(_ revision: Int, of chat: UUID) {
        hub.noteRevision(revision, of: chat)
    }

    func requestStop(in chat: UUID) async -> Bool {
        guard let transport else { return false }
        transport.send(.stopRequested(chat: chat))
        return true
    }

    func announce(_ change: CachedChange) {
        switch change {
        case .account(let user): transport?.send(.userChanged(user))
        case .chatList(let user): transport?.send(.chatListChanged(user))
        }
    }

    func onCachedChanges(_ handler: @escaping @Sendable (CachedChange?) -> Void) {
        cachedChangesHandler.set(handler)
    }

    func liveReply(in chat: UUID) -> LiveReply? {
        replies.liveReply(in: chat) ?? followers.withLockedValue { $0[chat] }?.live
    }

    func endStreams(of userID: String, issuedBefore cut: Date?) {
        hub.endStreams(of: userID) { session in
            guard let cut else { return true }
            return session.keyID == nil && session.issuedAt.map { $0 < cut } ?? true
        }
    }

    func endKeyStreams(of userID: String, keeping kept: Set<UUID>) {
        hub.endStreams(of: userID) { session in session.keyID.map { !kept.contains($0) } ?? false }
    }

    var usersWithStreams: [String] { hub.usersWithStreams }

    // MARK: Time and shutdown

    func tick(now: Date, sendKeepAlive: Bool) {
        hub.tick(now: now, sendKeepAlive: sendKeepAlive)
        transport?.tick(now: now, following: followedChats)
    }

    func shutdown() async {
        await hub.shutdown()
        await work.close(by: .now + .seconds(2))
        await transport?.shutdown()
    }

    var openStreamCount: Int { hub.openStreamCount }
}
