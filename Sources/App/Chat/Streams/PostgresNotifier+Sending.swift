import Foundation
import Logging
import PostgresNIO

/// The sending half of ``PostgresNotifier``: a bounded, ordered queue of notifications, sent in
/// batches on a connection of its own, never retrying one the database refuses.
extension PostgresNotifier {
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
            if case .delta(let piece) = notification, state.queue.count > state.inFlight, let last = state.queue.last,
               last.channel == channel, case .delta(var joined) = last.notification, joined.isFollowed(by: piece),
               joined.text.utf8.count + piece.text.utf8.count <= Self.maxJoinedBytes {
                joined.text += piece.text
                state.queue[state.queue.count - 1].notification = .delta(joined)
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
    /// Of those, the ones in the batch being sent (tests wait for the sender to take one).
    var inFlightCount: Int { sending.withLockedValue { $0.inFlight } }

    /// The most text joined pieces hold (half the limit: escaping may double it).
    static let maxJoinedBytes = BusNotification.maxTextBytes / 2

    /// PostgreSQL refuses a payload of 8,000 bytes or more.
    static let maxPayloadBytes = 7999

    func runSender() async {
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
        try await connection.closing(after: timing.answerWithin) {
            for try await _ in try await connection.query(query, logger: logger) {}
        }
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
}
