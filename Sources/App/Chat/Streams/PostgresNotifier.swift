import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

/// The event bus's own two connections to PostgreSQL, apart from the pool: one `LISTEN`s on the
/// channels this instance follows, one sends `NOTIFY`s. Each comes back by itself after a failure
/// (a database restart), with growing waits; the listener then listens again to every channel and
/// says so (``onReconnect``), since whatever was sent meanwhile never reached it.
///
/// Notifications go out in order, in batches: while one `SELECT pg_notify(…), pg_notify(…)` is on
/// the wire, the next ones gather (a reply's pieces of text joining into one), so a burst costs
/// one round trip, not one per event.
final class PostgresNotifier: Sendable {
    typealias Handler = @Sendable (_ channel: String, _ payload: String) -> Void

    private let configuration: PostgresConnection.Configuration
    /// This instance's id, in every payload it sends.
    private let instance: String
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let handler: Handler
    private let onReconnect: @Sendable () -> Void
    /// Told each time a notification is dropped, with why (for the metric).
    private let onDrop: @Sendable (String) -> Void
    /// Where ``BusNotification/resync`` goes: the channel every instance listens to.
    private let controlChannel: String

    private struct Listening {
        var connection: PostgresConnection?
        /// Channels this instance wants, and their listener on the current connection (if any).
        var channels: [String: PostgresListenContext?] = [:]
        var everConnected = false
        var isShutDown = false
    }

    private struct Sending {
        var connection: PostgresConnection?
        var queue: [(channel: String, notification: BusNotification)] = []
        /// How many at the head of the queue are being sent now (left as they are until sent).
        var inFlight = 0
        var isShutDown = false
        /// Notifications dropped from a full queue since the others were last told to catch up.
        var unannouncedLosses = 0
    }

    private let listening = NIOLockedValueBox(Listening())
    private let sending = NIOLockedValueBox(Sending())
    private let wakeSender: AsyncStream<Void>.Continuation
    private let senderSignals: AsyncStream<Void>
    private let tasks = NIOLockedValueBox<[Task<Void, Never>]>([])

    /// Notifications sent per statement at most.
    static let batchSize = 200
    /// Notifications kept while the database cannot be reached (a few megabytes at most).
    static let defaultMaxQueue = 10_000
    private let maxQueue: Int

    init(configuration: PostgresConnection.Configuration, eventLoopGroup: any EventLoopGroup, instance: String, logger: Logger,
         controlChannel: String, handler: @escaping Handler, onReconnect: @escaping @Sendable () -> Void,
         onDrop: @escaping @Sendable (String) -> Void, maxQueue: Int = defaultMaxQueue) {
        self.configuration = configuration
        self.maxQueue = maxQueue
        self.controlChannel = controlChannel
        self.onDrop = onDrop
        self.instance = instance
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.handler = handler
        self.onReconnect = onReconnect
        (senderSignals, wakeSender) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Connects both, and keeps them connected until ``shutdown()``.
    func start(listeningTo channels: [String]) async {
        listening.withLockedValue { state in
            for channel in channels { state.channels[channel] = .some(nil) }
        }
        await connectListener()
        let sender = Task { await self.runSender() }
        tasks.withLockedValue { $0.append(sender) }
    }

    // MARK: Listening

    /// Listens to `channel` from now on; true when the listener is connected and `LISTEN` has taken
    /// effect (notifications sent after this returns reach it), false when it is down (it will
    /// listen once back, and call ``onReconnect``).
    func listen(_ channel: String) async -> Bool {
        let connection: PostgresConnection? = listening.withLockedValue { state in
            guard state.channels[channel] == nil else { return nil }
            state.channels[channel] = .some(nil)
            return state.connection
        }
        guard let connection else { return listening.withLockedValue { $0.connection != nil && $0.channels[channel] != nil } }
        addListener(channel, on: connection)
        do {
            // Statements run in order on a connection: once this answers, the LISTEN before it took effect.
            try await connection.query("SELECT 1", logger: logger)
            return true
        } catch {
            return false
        }
    }

    /// Stops listening to `channel`.
    func unlisten(_ channel: String) {
        let context = listening.withLockedValue { $0.channels.removeValue(forKey: channel) }
        if case .some(.some(let context)) = context { context.stop() }
    }

    private func addListener(_ channel: String, on connection: PostgresConnection) {
        let context = connection.addListener(channel: channel) { [handler] _, notification in
            handler(notification.channel, notification.payload)
        }
        let stale = listening.withLockedValue { state -> PostgresListenContext? in
            guard state.channels[channel] != nil, state.connection === connection else { return context }
            state.channels[channel] = .some(context)
            return nil
        }
        stale?.stop()
    }

    /// Connects the listener, listens to every wanted channel, and reconnects when it closes.
    private func connectListener() async {
        var wait = Duration.milliseconds(100)
        while !listening.withLockedValue({ $0.isShutDown }) {
            do {
                let connection = try await PostgresConnection.connect(
                    on: eventLoopGroup.any(), configuration: configuration, id: 1, logger: logger
                ).get()
                let (channels, reconnected) = listening.withLockedValue { state in
                    state.connection = connection
                    defer { state.everConnected = true }
                    return (Array(state.channels.keys), state.everConnected)
                }
                channels.forEach { addListener($0, on: connection) }
                try await connection.query("SELECT 1", logger: logger)
                connection.closeFuture.whenComplete { [self] _ in listenerClosed(connection) }
                if reconnected {
                    logger.notice("event bus: listening again after the database connection came back")
                    onReconnect()
                }
                return
            } catch {
                logger.warning("event bus: cannot listen to the database yet", metadata: ["error": "\(error)", "retry_in": "\(wait)"])
                try? await Task.sleep(for: wait)
                wait = min(wait * 2, .seconds(5))
            }
        }
    }

    private func listenerClosed(_ connection: PostgresConnection) {
        let reconnect = listening.withLockedValue { state -> Bool in
            guard state.connection === connection else { return false }
            state.connection = nil
            for channel in state.channels.keys { state.channels[channel] = .some(nil) }
            return !state.isShutDown
        }
        guard reconnect else { return }
        logger.warning("event bus: the listening connection closed; reconnecting")
        let task = Task { await self.connectListener() }
        tasks.withLockedValue { $0.append(task) }
    }

    /// Whether the listener is connected now.
    var isListening: Bool { listening.withLockedValue { $0.connection != nil } }

    // MARK: Sending

    /// Queues a notification; it goes out with the next batch, after every one queued before it.
    /// A piece of a reply's text that continues the one queued last (not yet on the wire) joins
    /// it: under load, one notification carries what arrived while the previous batch was sent.
    /// Positions are byte offsets, so the joined piece moves a follower's streams exactly as far.
    ///
    /// The queue is bounded (``defaultMaxQueue``): while the database cannot be reached, the oldest
    /// pieces of text go first, then the oldest notifications of any kind; the other instances are
    /// then told to catch up (``BusNotification/resync``) as soon as sending works again.
    func notify(_ channel: String, _ notification: BusNotification) {
        let notification = notification.fitting()
        let dropped = sending.withLockedValue { state -> Int? in
            guard !state.isShutDown else { return nil }
            if case .delta(let chat, let message, let sequence, let offset, let text) = notification,
               state.queue.count > state.inFlight, let last = state.queue.last, last.channel == channel,
               case .delta(_, message, sequence, let lastOffset, let lastText) = last.notification,
               lastOffset + lastText.utf8.count == offset, lastText.utf8.count + text.utf8.count <= Self.maxJoinedBytes {
                state.queue[state.queue.count - 1].notification = .delta(chat: chat, message: message, sequence: sequence,
                                                                         offset: lastOffset, text: lastText + text)
                return 0
            }
            var dropped = 0
            if state.queue.count >= maxQueue, state.queue.count > state.inFlight {
                let waiting = state.queue[state.inFlight...]
                let index = waiting.firstIndex { if case .delta = $0.notification { true } else { false } } ?? waiting.startIndex
                state.queue.remove(at: index)
                state.unannouncedLosses += 1
                dropped = 1
            }
            state.queue.append((channel, notification))
            return dropped
        }
        guard let dropped else { return }
        if dropped > 0 { onDrop("queue_full") }
        wakeSender.yield()
    }

    /// Notifications queued and not yet sent (tests wait for it to drain).
    var queuedCount: Int { sending.withLockedValue { $0.queue.count } }

    /// The most text joined pieces hold (half the limit: escaping may double it).
    static let maxJoinedBytes = BusNotification.maxTextBytes / 2

    /// PostgreSQL refuses a payload of 8,000 bytes or more.
    static let maxPayloadBytes = 7999

    private func runSender() async {
        for await _ in senderSignals {
            while true {
                let (batch, losses) = sending.withLockedValue { state -> ([(channel: String, payload: String)], Int) in
                    state.inFlight = min(Self.batchSize, state.queue.count)
                    var batch = state.queue.prefix(state.inFlight).map { ($0.channel, $0.notification.payload(from: instance)) }
                    if state.unannouncedLosses > 0, !batch.isEmpty {
                        // Others missed what was dropped: they catch up before anything newer.
                        batch.insert((controlChannel, BusNotification.resync.payload(from: instance)), at: 0)
                    }
                    return (batch, batch.isEmpty ? 0 : state.unannouncedLosses)
                }
                guard !batch.isEmpty else { break }
                guard await send(batch) else { break }
                sending.withLockedValue { state in
                    state.queue.removeFirst(state.inFlight)
                    state.inFlight = 0
                    state.unannouncedLosses -= losses
                }
            }
            if sending.withLockedValue({ $0.isShutDown && $0.queue.isEmpty }) { return }
        }
    }

    /// Sends `batch` in one statement, connecting first when needed; false once shut down. A
    /// notification is never retried forever: one too large is dropped before it is sent, and
    /// when the database refuses the statement itself (rather than being out of reach), each
    /// notification goes on its own and those it refuses are dropped. Either is logged and counted.
    private func send(_ batch: [(channel: String, payload: String)]) async -> Bool {
        let sendable = batch.filter { item in
            guard item.payload.utf8.count > Self.maxPayloadBytes else { return true }
            logger.error("event bus: a notification too large to send was dropped",
                         metadata: ["bytes": "\(item.payload.utf8.count)", "kind": "\(item.payload.prefix(while: { $0 != "|" }))"])
            onDrop("too_large")
            return false
        }
        var wait = Duration.milliseconds(100)
        while true {
            do {
                let connection = try await senderConnection()
                do {
                    try await notify(sendable, on: connection)
                } catch where !Self.isConnectionFailure(error) && sendable.count > 1 {
                    // One of them was refused: send each alone, so that only that one is lost.
                    for item in sendable {
                        do {
                            try await notify([item], on: connection)
                        } catch where !Self.isConnectionFailure(error) {
                            dropRefused(item, error)
                        }
                    }
                } catch where !Self.isConnectionFailure(error) {
                    sendable.forEach { dropRefused($0, error) }
                }
                return true
            } catch {
                let (connection, isShutDown) = sending.withLockedValue { state in
                    defer { state.connection = nil }
                    return (state.connection, state.isShutDown)
                }
                try? await connection?.close()
                if isShutDown { return false }
                logger.warning("event bus: cannot notify yet", metadata: ["error": "\(error)", "retry_in": "\(wait)"])
                try? await Task.sleep(for: wait)
                wait = min(wait * 2, .seconds(5))
            }
        }
    }

    private func notify(_ batch: [(channel: String, payload: String)], on connection: PostgresConnection) async throws {
        guard !batch.isEmpty else { return }
        var query = PostgresQuery(unsafeSQL: "SELECT " + (0..<batch.count).map { "pg_notify($\(2 * $0 + 1), $\(2 * $0 + 2))" }
            .joined(separator: ", "))
        for item in batch {
            query.binds.append(item.channel)
            query.binds.append(item.payload)
        }
        // The rows are read to the end: an error raised while the statement runs (a refused
        // notification) arrives with them, not with the statement's start.
        for try await _ in try await connection.query(query, logger: logger) {}
    }

    private func dropRefused(_ item: (channel: String, payload: String), _ error: any Error) {
        logger.error("event bus: the database refused a notification; dropped", metadata: [
            "error": "\(DatabaseSetup.describe(error))", "kind": "\(item.payload.prefix(while: { $0 != "|" }))",
        ])
        onDrop("refused")
    }

    /// Whether `error` means the database is out of reach (worth waiting for), not that it refused
    /// what was sent.
    static func isConnectionFailure(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError else { return true }
        return error.code != .server || DatabaseUnavailable.matches(error)
    }

    private func senderConnection() async throws -> PostgresConnection {
        if let connection = sending.withLockedValue({ $0.connection }), !connection.isClosed { return connection }
        let connection = try await PostgresConnection.connect(on: eventLoopGroup.any(), configuration: configuration, id: 2, logger: logger).get()
        sending.withLockedValue { $0.connection = connection }
        return connection
    }

    // MARK: Shutdown

    /// Sends what is queued (for a short while at most), then closes both connections.
    func shutdown() async {
        sending.withLockedValue { $0.isShutDown = true }
        wakeSender.yield()
        wakeSender.finish()
        let deadline = ContinuousClock.now + .seconds(2)
        while !sending.withLockedValue({ $0.queue.isEmpty }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let listener = listening.withLockedValue { state in
            state.isShutDown = true
            defer { state.connection = nil }
            return state.connection
        }
        let sender = sending.withLockedValue { $0.connection }
        try? await listener?.close()
        try? await sender?.close()
        for task in tasks.withLockedValue({ $0 }) { task.cancel() }
    }
}
