import Fluent
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import SQLKit
import Vapor

/// The ``ChatEventBus`` of instances that share a PostgreSQL database: any instance serves any
/// chat, live. Each instance delivers to its own streams through a ``ChatStreamHub`` and tells the
/// others over `LISTEN/NOTIFY` (``PostgresNotifier``): events of a chat on the chat's channel,
/// which only instances with streams on it listen to; stops, syncs, deletions and account changes
/// on a control channel every instance listens to.
///
/// An instance with streams on a chat whose reply runs elsewhere follows that reply
/// (``ReplyFollower``): it keeps the text so far, so that a stream joining later replays it, and
/// holds each event until what comes before it is known. Positions (message, byte offset) make
/// event ids the same on every instance, so `Last-Event-ID` from one resumes on another exactly.
final class PostgresChatEventBus: ChatEventBus {
    let hub: ChatStreamHub
    private let replies: RunningReplies
    private let store: ReplyStore
    private let database: DatabaseAccess
    private let channels: BusChannels
    let instance: String
    private let logger: Logger
    private let followers = NIOLockedValueBox<[UUID: ReplyFollower]>([:])
    private let notifierBox = NIOLockedValueBox<PostgresNotifier?>(nil)
    /// The chats other instances follow (they have streams on them), by instance, with when each
    /// last said so: the text of a reply goes out only for these. A single instance, or one whose
    /// streams are on the instance running the reply, sends no text through the database at all.
    private let interest = NIOLockedValueBox<[UUID: [String: Date]]>([:])
    private let clock: any WallClock
    private let lastAnnouncement = NIOLockedValueBox<Date?>(nil)
    private let deltasSent = NIOLockedValueBox(0)
    /// How often an instance says again which chats it follows, and how long others believe it.
    static let announceInterval: TimeInterval = 20
    static let interestLifetime: TimeInterval = 60
    /// Called when another instance says an account changed (to forget what is kept of it), with
    /// nil when any may have (this instance was not listening for a while).
    private let accountsChangedHandler = NIOLockedValueBox<(@Sendable (UUID?) -> Void)?>(nil)
    /// Reads of the database that what another instance said calls for; shutdown ends them.
    private let work = OwnedTasks()

    init(hub: ChatStreamHub, replies: RunningReplies, store: ReplyStore, database: @escaping DatabaseAccess,
         connection: PostgresConnection.Configuration, channels: BusChannels, eventLoopGroup: any EventLoopGroup, clock: any WallClock,
         logger: Logger, metrics: AppMetrics) {
        self.hub = hub
        self.clock = clock
        self.replies = replies
        self.store = store
        self.database = database
        self.logger = logger
        self.channels = channels
        instance = UUID().uuidString.lowercased()
        let notifier = PostgresNotifier(
            configuration: connection, eventLoopGroup: eventLoopGroup, instance: instance, logger: logger,
            controlChannel: channels.control,
            handler: { [weak self] channel, payload in self?.received(payload, on: channel) },
            onReconnect: { [weak self] in self?.listenerCameBack() },
            onDrop: { metrics.busNotificationDropped($0) }
        )
        notifierBox.withLockedValue { $0 = notifier }
        hub.onChatIdle = { [weak self] chat in self?.stopFollowing(chat) }
    }

    var notifier: PostgresNotifier? { notifierBox.withLockedValue { $0 } }

    /// Connects to the database's notifications; called once the server starts.
    func start() async {
        await notifier?.start(listeningTo: [channels.control])
    }

    /// What to do when another instance says an account changed (nil: any account may have, while
    /// this instance could not hear it).
    func onAccountsChanged(_ handler: @escaping @Sendable (UUID?) -> Void) {
        accountsChangedHandler.withLockedValue { $0 = handler }
    }

    // MARK: Streams

    func subscribe(to chat: UUID, session: StreamSession, on eventLoop: any EventLoop) async throws -> StreamSubscriber {
        let subscriber = try hub.subscribe(to: chat, session: session, on: eventLoop)
        let (follower, isNew) = followers.withLockedValue { followers -> (ReplyFollower, Bool) in
            if let existing = followers[chat] { return (existing, false) }
            let follower = ReplyFollower(chat: chat, bus: self)
            followers[chat] = follower
            return (follower, true)
        }
        if isNew {
            follower.startListening { [notifier, channels] in
                let listening = await notifier?.listen(channels.chat(chat)) ?? false
                // Whoever runs the chat's reply says how far it is, so that this instance can follow it.
                notifier?.notify(channels.control, .syncRequested(chat: chat))
                return listening
            }
        }
        // Events of the chat reach this instance from now on (or the listener is down, and it
        // catches up when it comes back): the caller may read the stored chat.
        await follower.listening()
        return subscriber
    }

    func cancel(_ subscriber: StreamSubscriber) { hub.cancel(subscriber) }

    private func stopFollowing(_ chat: UUID) {
        let removed = followers.withLockedValue { $0.removeValue(forKey: chat) }
        guard removed != nil else { return }
        notifier?.unlisten(channels.chat(chat))
        send(.unfollowed(chat: chat))
    }

    /// Says that this instance follows `chat` (a follower saw a reply start there: whoever runs it
    /// may not know yet).
    func announceFollowing(_ chat: UUID) {
        send(.following(chat: chat))
    }

    /// Whether another instance follows `chat`.
    func isFollowedByAnotherInstance(_ chat: UUID) -> Bool { isFollowedElsewhere(chat) }

    private func isFollowedElsewhere(_ chat: UUID) -> Bool {
        interest.withLockedValue { $0[chat] != nil }
    }

    private func noteInterest(in chat: UUID, from sender: String, following: Bool) {
        let now = clock.now()
        interest.withLockedValue { interest in
            if following {
                interest[chat, default: [:]][sender] = now
            } else {
                interest[chat]?[sender] = nil
                if interest[chat]?.isEmpty == true { interest[chat] = nil }
            }
        }
    }

    // MARK: Publishing

    func messageStored(_ message: MessageResponse) {
        hub.messageStored(message)
        guard let chat = UUID(hyphenated: message.chatID), let id = UUID(hyphenated: message.id) else { return }
        send(.messageStored(chat: chat, message: id))
    }

    func replyDelta(_ delta: ReplyDelta) {
        hub.replyDelta(delta)
        // Text only where another instance follows the chat: it learned how far the reply was
        // when it started following (a sync), and gets every piece from then on.
        guard isFollowedElsewhere(delta.chatID) else { return }
        let pieces = BusNotification.deltas(delta)
        deltasSent.withLockedValue { $0 += pieces.count }
        pieces.forEach(send)
    }

    /// Reply text notifications sent so far (tests, and what an operator may want to know).
    var deltaNotificationsSent: Int { deltasSent.withLockedValue { $0 } }

    func replyEnded(_ message: MessageResponse) {
        hub.replyEnded(message)
        guard let chat = UUID(hyphenated: message.chatID), let id = UUID(hyphenated: message.id) else { return }
        send(.replyEnded(chat: chat, message: id))
    }

    func chatDeleted(_ chat: UUID) {
        hub.chatDeleted(chat)
        send(.chatDeleted(chat: chat))
    }

    func conversationChanged(in chat: UUID, revision: Int, conversation: [MessageResponse]) {
        hub.conversationChanged(in: chat, revision: revision, conversation: conversation)
        send(.conversationChanged(chat: chat, revision: revision))
    }

    func chatRenamed(_ chat: UUID, title: String) {
        hub.chatRenamed(chat, title: title)
        send(.chatRenamed(chat: chat, title: title))
    }

    func endStreams(of userID: String, issuedBefore cut: Date?) {
        hub.endStreams(of: userID, issuedBefore: cut)
    }

    var usersWithStreams: [String] { hub.usersWithStreams }

    func noteRevision(_ revision: Int, of chat: UUID) {
        hub.noteRevision(revision, of: chat)
    }

    func requestStop(in chat: UUID) async -> Bool {
        send(.stopRequested(chat: chat))
        return true
    }

    /// Tells every other instance that an account changed.
    func userChanged(_ user: UUID) {
        send(.userChanged(user))
    }

    func liveReply(in chat: UUID) -> LiveReply? {
        replies.liveReply(in: chat) ?? followers.withLockedValue { $0[chat] }?.live
    }

    private func send(_ notification: BusNotification) {
        let channel = notification.isControl ? channels.control : notification.chat.map(channels.chat) ?? channels.control
        notifier?.notify(channel, notification)
    }

    // MARK: Receiving

    private func received(_ payload: String, on channel: String) {
        guard let (sender, notification) = BusNotification.parse(payload), sender != instance else { return }
        switch notification {
        case .stopRequested(let chat):
            replies.stop(in: chat, .stoppedByUser)
        case .chatDeleted(let chat):
            hub.chatDeleted(chat)
        case .syncRequested(let chat):
            noteInterest(in: chat, from: sender, following: true)
            guard let reply = replies.reply(in: chat) else { return }
            work.run { await self.saveForFollowers(reply) }
        case .following(let chat):
            noteInterest(in: chat, from: sender, following: true)
        case .unfollowed(let chat):
            noteInterest(in: chat, from: sender, following: false)
        case .userChanged(let user):
            accountsChangedHandler.withLockedValue { $0 }?(user)
        case .conversationChanged(let chat, let revision):
            work.run { await self.readConversation(of: chat, revision: revision) }
        case .chatRenamed(let chat, let title?):
            hub.chatRenamed(chat, title: title)
        case .chatRenamed(let chat, nil):
            work.run { await self.readTitle(of: chat) }
        case .resync:
            // The sender dropped notifications: as if this instance had not been listening.
            listenerCameBack()
        case .messageStored(let chat, _), .delta(let chat, _, _, _, _), .replyEnded(let chat, _), .replySaved(let chat, _, _):
            followers.withLockedValue { $0[chat] }?.receive(notification)
        }
    }

    /// Saves a reply this instance runs and tells its followers how far the saved text goes.
    private func saveForFollowers(_ reply: RunningReply) async {
        let text = reply.text
        do {
            guard try await store.checkpoint(reply.job.messageID, text: text, now: Date()) else { return }
            reply.saved(bytes: text.utf8.count)
            send(.replySaved(chat: reply.job.chatID, message: reply.job.messageID, bytes: text.utf8.count))
        } catch {
            logger.warning("event bus: could not save a reply for the instances following it", metadata: ["error": "\(error)"])
        }
    }

    /// The listener missed whatever was sent while it was down: every followed chat catches up
    /// from the stored chat, and asks again how far its reply is.
    private func listenerCameBack() {
        accountsChangedHandler.withLockedValue { $0 }?(nil)
        let followed = followers.withLockedValue { Array($0.values) }
        for follower in followed {
            follower.lostTrack()
            send(.syncRequested(chat: follower.chat))
        }
    }

    /// Asks whoever runs `chat`'s reply to say how far it is (a follower saw a gap).
    func requestSync(_ chat: UUID) {
        send(.syncRequested(chat: chat))
    }

    /// The stored message `id` as a stream shows it.
    func storedMessage(_ id: UUID) async throws -> MessageResponse? {
        try await store.message(id)
    }

    /// Another instance changed the chat's current conversation: this instance's streams get it
    /// as stored (when the read fails, they keep what they have until they reconnect).
    private func readConversation(of chat: UUID, revision: Int) async {
        guard hub.hasStreams(on: chat) else { return }
        do {
            hub.conversationChanged(in: chat, revision: revision, conversation: try await conversation(of: chat))
        } catch {
            logger.warning("event bus: could not read a changed conversation", metadata: ["chat": "\(chat)", "error": "\(error)"])
        }
    }

    /// Another instance renamed the chat with a title too long to travel: read it.
    private func readTitle(of chat: UUID) async {
        guard hub.hasStreams(on: chat) else { return }
        do {
            let row = try await database().sql().select().column("title").from(Chat.schema).where("id", .equal, SQLBind(chat)).first()
            if let title = try row?.decode(column: "title", as: String.self) { hub.chatRenamed(chat, title: title) }
        } catch {
            logger.warning("event bus: could not read a changed title", metadata: ["chat": "\(chat)", "error": "\(error)"])
        }
    }

    /// The chat as a stream replays it (stored, with the live text laid over).
    func conversation(of chat: UUID) async throws -> [MessageResponse] {
        ChatConversation.overlay(try await ChatReads.messages(of: chat, on: database()), in: chat, bus: self)
    }

    // MARK: Time and shutdown

    func tick(now: Date, sendKeepAlive: Bool) {
        hub.tick(now: now, sendKeepAlive: sendKeepAlive)
        let due = lastAnnouncement.withLockedValue { last in
            guard last.map({ now.timeIntervalSince($0) >= Self.announceInterval }) ?? true else { return false }
            last = now
            return true
        }
        guard due else { return }
        followedChats.forEach { send(.following(chat: $0)) }
        interest.withLockedValue { interest in
            for (chat, instances) in interest {
                let alive = instances.filter { now.timeIntervalSince($0.value) < Self.interestLifetime }
                interest[chat] = alive.isEmpty ? nil : alive
            }
        }
    }

    func shutdown() async {
        await hub.shutdown()
        await work.close(by: .now + .seconds(2))
        await notifier?.shutdown()
    }

    var openStreamCount: Int { hub.openStreamCount }

    /// Whether the listening connection is up (for tests and readiness).
    var isListening: Bool { notifier?.isListening ?? false }

    /// The listening connection's server process (tests end it to simulate a lost connection).
    func listenerBackendPID() async throws -> Int? { try await notifier?.listenerBackendPID() }

    /// Chats this instance follows now.
    var followedChats: [UUID] { followers.withLockedValue { Array($0.keys) } }
}

/// The bus's channel names: one per chat and a control channel, under a namespace (the schema
/// when the server runs in one, so that test servers sharing a database do not hear each other).
struct BusChannels: Sendable {
    let namespace: String

    /// PostgreSQL cuts channel names (identifiers) at 63 bytes: a longer one would make chats share
    /// a channel.
    static let maxNameBytes = 63

    /// The channels of `schema` (nil: the default schema); refused when a chat's channel would not
    /// fit in ``maxNameBytes``.
    init(schema: String?) throws(SettingsError) {
        namespace = (["chat"] + (schema.map { [$0] } ?? [])).joined(separator: "_")
        guard chat(UUID()).utf8.count <= Self.maxNameBytes else {
            throw SettingsError(key: "DATABASE_SCHEMA", problem: "too long for the event bus: its channel names (chat_<schema>_<chat id>) "
                + "must fit in \(Self.maxNameBytes) bytes, so the schema may have at most "
                + "\(Self.maxNameBytes - 38) bytes; choose a shorter name or EVENT_BUS=local")
        }
    }

    var control: String { namespace + "_control" }

    func chat(_ chat: UUID) -> String {
        namespace + "_" + chat.uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    }
}
