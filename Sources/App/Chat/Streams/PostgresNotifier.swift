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
///
/// A connection the network cut without a word (no packet ever closes it) would otherwise hang
/// the sender's statement, or leave the listener listening to nothing, for good: every statement
/// on either connection is given ``Timing/answerWithin`` before its connection is closed (and the
/// batch sent again on a new one: a notification may then arrive twice, which every receiver
/// takes as once), and the listener is asked a `SELECT 1` every ``Timing/probeEvery``.
final class PostgresNotifier: Sendable {
    typealias Handler = @Sendable (_ channel: String, _ payload: String) -> Void

    let configuration: PostgresConnection.Configuration
    /// This instance's id, in every payload it sends.
    let instance: String
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    private let handler: Handler
    private let onReconnect: @Sendable () -> Void
    /// Told each time a notification is dropped, with why (for the metric).
    let onDrop: @Sendable (String) -> Void
    /// Where ``BusNotification/resync`` goes: the channel every instance listens to.
    let controlChannel: String

    /// How long the database has to answer, and how often the listener is checked.
    struct Timing: Sendable {
        /// A statement not answered by then (its connection silently cut) closes its connection.
        var answerWithin: Duration = .seconds(10)
        /// How often the listening connection is asked a `SELECT 1`.
        var probeEvery: Duration = .seconds(30)
    }
    let timing: Timing

    private struct Listening {
        var connection: PostgresConnection?
        /// Channels this instance wants, and their listener on the current connection (if any).
        var channels: [String: PostgresListenContext?] = [:]
        var everConnected = false
        var isShutDown = false
    }

    struct Sending {
        var connection: PostgresConnection?
        var queue: [(channel: String, notification: BusNotification)] = []
        /// How many at the head of the queue are being sent now (left as they are until sent).
        var inFlight = 0
        var isShutDown = false
        /// Notifications dropped from a full queue since the others were last told to catch up.
        var unannouncedLosses = 0
    }

    private let listening = NIOLockedValueBox(Listening())
    let sending = NIOLockedValueBox(Sending())
    let wakeSender: AsyncStream<Void>.Continuation
    let senderSignals: AsyncStream<Void>
    let tasks = NIOLockedValueBox<[Task<Void, Never>]>([])

    /// Notifications sent per statement at most.
    static let batchSize = 200
    /// Notifications kept while the database cannot be reached (a few megabytes at most).
    static let defaultMaxQueue = 10_000
    let maxQueue: Int

    init(configuration: PostgresConnection.Configuration, eventLoopGroup: any EventLoopGroup, instance: String, logger: Logger,
         controlChannel: String, handler: @escaping Handler, onReconnect: @escaping @Sendable () -> Void,
         onDrop: @escaping @Sendable (String) -> Void, maxQueue: Int = defaultMaxQueue, timing: Timing = Timing()) {
        self.configuration = configuration
        self.timing = timing
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
        let probe = Task { await self.probeListener() }
        tasks.withLockedValue { $0.append(contentsOf: [sender, probe]) }
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
            try await answered(on: connection)
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
            var made: PostgresConnection?
            do {
                let connection = try await PostgresConnection.connect(
                    on: eventLoopGroup.any(), configuration: configuration, id: 1, logger: logger
                ).get()
                made = connection
                let channels = listening.withLockedValue { state in
                    state.connection = connection
                    return Array(state.channels.keys)
                }
                channels.forEach { addListener($0, on: connection) }
                try await answered(on: connection)
                let reconnected = listening.withLockedValue { state in
                    defer { state.everConnected = true }
                    return state.everConnected
                }
                // Watched once it listens (a connection closed meanwhile is seen at once): until
                // then a failure is this loop's to retry, not a second loop's.
                connection.closeFuture.whenComplete { [self] _ in listenerClosed(connection) }
                if reconnected {
                    logger.notice("event bus: listening again after the database connection came back")
                    onReconnect()
                }
                return
            } catch {
                if let made {
                    // Nothing is left listening on a connection this loop gave up on.
                    listening.withLockedValue { state in
                        guard state.connection === made else { return }
                        state.connection = nil
                        for channel in state.channels.keys { state.channels[channel] = .some(nil) }
                    }
                    try? await made.close()
                }
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

    /// Asks the listening connection a `SELECT 1` every ``Timing/probeEvery``; one that does not
    /// answer in time is closed, and the listener connects again and says so (``onReconnect``).
    private func probeListener() async {
        while !listening.withLockedValue({ $0.isShutDown }) {
            do { try await Task.sleep(for: timing.probeEvery) } catch { return }
            guard let connection = listening.withLockedValue({ $0.connection }) else { continue }
            do {
                try await answered(on: connection)
            } catch {
                logger.warning("event bus: the listening connection did not answer; reconnecting", metadata: ["error": "\(error)"])
                try? await connection.close()
            }
        }
    }

    /// A `SELECT 1` answered on `connection` (every statement before it too), within ``Timing/answerWithin``.
    private func answered(on connection: PostgresConnection) async throws {
        try await connection.closing(after: timing.answerWithin) { try await connection.query("SELECT 1", logger: logger) }
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

extension PostgresConnection {
    /// Runs `body`, closing this connection if it has not finished within `limit` — which fails
    /// whatever waits on it: a peer the network cut without a word never answers, nor closes.
    @discardableResult
    func closing<T>(after limit: Duration, _ body: () async throws -> T) async throws -> T {
        let timer = eventLoop.scheduleTask(in: TimeAmount(limit)) { [self] in _ = close() as EventLoopFuture<Void> }
        defer { timer.cancel() }
        return try await body()
    }
}
