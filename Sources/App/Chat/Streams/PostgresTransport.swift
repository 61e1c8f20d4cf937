import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

/// The ``InstanceTransport`` of instances that share a PostgreSQL database: `LISTEN/NOTIFY`
/// through a ``PostgresNotifier``, a channel per chat (listened to only by instances with streams
/// on it) and a control channel every instance listens to (stops, syncs, deletions, account
/// changes, and who follows what). It keeps the follow bookkeeping: which other instances follow
/// which chats, from what they say (``BusNotification/following(chat:)``, again every
/// ``announceInterval``; believed for ``interestLifetime``).
final class PostgresTransport: InstanceTransport {
    let instance: String
    let channels: BusChannels
    let notifier: PostgresNotifier
    private let clock: any WallClock
    /// The chats other instances follow, by instance, with when each last said so.
    private let interest = NIOLockedValueBox<[UUID: [String: Date]]>([:])
    private let lastAnnouncement = NIOLockedValueBox<Date?>(nil)
    private let deltasSent = NIOLockedValueBox(0)
    private let handlers = NIOLockedValueBox<Handlers?>(nil)

    static let announceInterval: Duration = .seconds(20)
    static let interestLifetime: Duration = .seconds(60)

    private struct Handlers {
        var receive: @Sendable (BusNotification, String) -> Void
        var reconnected: @Sendable () -> Void
    }

    init(connection: PostgresConnection.Configuration, channels: BusChannels, eventLoopGroup: any EventLoopGroup,
         clock: any WallClock, logger: Logger, metrics: AppMetrics) {
        let instance = UUID().uuidString.lowercased()
        self.instance = instance
        self.channels = channels
        self.clock = clock
        let received = HandlerSlot<String>()
        let reconnected = HandlerSlot<Void>()
        notifier = PostgresNotifier(
            configuration: connection, eventLoopGroup: eventLoopGroup, instance: instance, logger: logger,
            controlChannel: channels.control,
            handler: { _, payload in received(payload) },
            onReconnect: { reconnected() },
            onDrop: { metrics.busNotificationDropped($0) }
        )
        received.set { [weak self] payload in self?.received(payload) }
        reconnected.set { [weak self] in self?.handlers.withLockedValue { $0 }?.reconnected() }
    }

    func start(receive: @escaping @Sendable (BusNotification, String) -> Void, reconnected: @escaping @Sendable () -> Void) async {
        handlers.withLockedValue { $0 = Handlers(receive: receive, reconnected: reconnected) }
        await notifier.start(listeningTo: [channels.control])
    }

    func send(_ notification: BusNotification) {
        if case .delta = notification { deltasSent.withLockedValue { $0 += 1 } }
        let channel = notification.isControl ? channels.control : notification.chat.map(channels.chat) ?? channels.control
        notifier.notify(channel, notification)
    }

    func follow(_ chat: UUID) async -> Bool {
        let listening = await notifier.listen(channels.chat(chat))
        // Whoever runs the chat's reply says how far it is, so that this instance can follow it.
        send(.syncRequested(chat: chat))
        return listening
    }

    func unfollow(_ chat: UUID) {
        notifier.unlisten(channels.chat(chat))
        send(.unfollowed(chat: chat))
    }

    func isFollowedElsewhere(_ chat: UUID) -> Bool {
        interest.withLockedValue { $0[chat] != nil }
    }

    func tick(now: Date, following: [UUID]) {
        let due = lastAnnouncement.withLockedValue { last in
            guard last.map({ now >= $0.adding(Self.announceInterval) }) ?? true else { return false }
            last = now
            return true
        }
        guard due else { return }
        following.forEach { send(.following(chat: $0)) }
        interest.withLockedValue { interest in
            for (chat, instances) in interest {
                let alive = instances.filter { now < $0.value.adding(Self.interestLifetime) }
                interest[chat] = alive.isEmpty ? nil : alive
            }
        }
    }

    func shutdown() async {
        await notifier.shutdown()
    }

    /// Another instance's notification: its follow bookkeeping is kept here, and it goes on to the bus.
    private func received(_ payload: String) {
        guard let (sender, notification) = BusNotification.parse(payload), sender != instance else { return }
        switch notification {
        case .syncRequested(let chat), .following(let chat): noteInterest(in: chat, from: sender, following: true)
        case .unfollowed(let chat): noteInterest(in: chat, from: sender, following: false)
        default: break
        }
        handlers.withLockedValue { $0 }?.receive(notification, sender)
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

    /// Whether the listening connection is up (tests, readiness).
    var isListening: Bool { notifier.isListening }

    /// Reply text notifications sent so far (tests, and what an operator may want to know).
    var deltaNotificationsSent: Int { deltasSent.withLockedValue { $0 } }
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
