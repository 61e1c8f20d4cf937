import Fluent
import Foundation
import Logging
import NIOConcurrencyHelpers
import SQLKit

/// Rate-limit buckets in PostgreSQL, shared by every instance on the database, so that a limit is
/// the limit however many instances count it: one row per bucket in an `UNLOGGED` table (buckets
/// are worth nothing after a crash, so they skip the write-ahead log) and one statement per check —
/// the GCRA update and its verdict together, atomic under concurrent checks. While the database
/// cannot be reached, limits are counted in this process (``fallback``) rather than failing every
/// request: the limits still hold, per instance, until the database is back. Any other error is
/// the request's to answer (a problem, never a pass).
final class PostgresRateLimitStore: RateLimitStore {
    private let database: DatabaseAccess
    private let fallback: InMemoryRateLimitStore
    private let logger: Logger
    /// Whether the last check fell back (to log each change once, not every request).
    private let fellBack = NIOLockedValueBox(false)
    /// Checks since the last sweep of buckets that are full again (the same as no row).
    private let checksSinceSweep = NIOLockedValueBox(0)
    static let sweepEvery = 1000

    init(database: @escaping DatabaseAccess, fallback: InMemoryRateLimitStore, logger: Logger) {
        self.database = database
        self.fallback = fallback
        self.logger = logger
    }

    /// The table has no bound to run into: every request is counted in the client's own bucket.
    func acquire(_ keys: [RateLimitKey], policy: RateLimitPolicy, now: Date) async throws -> RateLimitDecision {
        guard let key = keys.first else { return policy.decide(fullAt: nil, now: now.timeIntervalSinceReferenceDate) }
        do {
            let decision = try await sharedAcquire(key, policy: policy, now: now)
            note(fallingBack: false, nil)
            return decision
        } catch where DatabaseUnavailable.matches(error) {
            note(fallingBack: true, error)
            return fallback.acquire(keys, policy: policy, now: now)
        }
    }

    func fullAt(_ key: RateLimitKey) async throws -> TimeInterval? {
        do {
            return try await database().sql().raw("SELECT full_at FROM rate_limit_buckets WHERE key = \(bind: Data(key.bytes))").first()?
                .decode(column: "full_at", as: Double.self)
        } catch where DatabaseUnavailable.matches(error) {
            note(fallingBack: true, error)
            return fallback.fullAt(key)
        }
    }

    func refund(_ key: RateLimitKey, policy: RateLimitPolicy, now: Date) async throws {
        do {
            try await database().sql().raw("""
                UPDATE rate_limit_buckets SET full_at = full_at - \(bind: policy.emissionInterval) WHERE key = \(bind: Data(key.bytes))
                """).run()
        } catch where DatabaseUnavailable.matches(error) {
            fallback.refund(key, policy: policy, now: now)
        }
    }

    private func note(fallingBack: Bool, _ error: (any Error)?) {
        let changed = fellBack.withLockedValue { state in
            defer { state = fallingBack }
            return state != fallingBack
        }
        guard changed else { return }
        if let error {
            logger.warning("rate limits: the database cannot be reached; counting in this process until it is back",
                           metadata: ["error": "\(DatabaseSetup.describe(error))"])
        } else {
            logger.notice("rate limits: counted in the database again")
        }
    }

    private func sharedAcquire(_ key: RateLimitKey, policy: RateLimitPolicy, now: Date) async throws -> RateLimitDecision {
        let time = now.timeIntervalSinceReferenceDate
        let interval = policy.emissionInterval
        let sql = try database().sql()
        let row = try await sql.raw("""
            WITH counted AS (
                INSERT INTO rate_limit_buckets AS bucket (key, full_at) VALUES (\(bind: Data(key.bytes)), \(bind: time + interval))
                ON CONFLICT (key) DO UPDATE SET full_at = GREATEST(bucket.full_at, \(bind: time)) + \(bind: interval)
                    WHERE GREATEST(bucket.full_at, \(bind: time)) + \(bind: interval) - \(bind: policy.period) <= \(bind: time)
                RETURNING full_at
            )
            SELECT full_at, TRUE AS counted FROM counted
            UNION ALL
            SELECT full_at, FALSE AS counted FROM rate_limit_buckets
                WHERE key = \(bind: Data(key.bytes)) AND NOT EXISTS (SELECT 1 FROM counted)
            """).first()
        await sweepNow(sql, time: time)
        guard let row else { return policy.decide(fullAt: nil, now: time) }
        let fullAt = try row.decode(column: "full_at", as: Double.self)
        if try row.decode(column: "counted", as: Bool.self) {
            // Counted: the bucket is now full again at `fullAt`, which is what counting it would give.
            var decision = policy.decide(fullAt: fullAt - interval, now: time)
            decision.counted = key
            return decision
        }
        return policy.decide(fullAt: fullAt, now: time)
    }

    /// Deletes buckets that are full again, now and then.
    private func sweepNow(_ sql: any SQLDatabase, time: TimeInterval) async {
        let due = checksSinceSweep.withLockedValue { count in
            count += 1
            guard count >= Self.sweepEvery else { return false }
            count = 0
            return true
        }
        guard due else { return }
        try? await sql.raw("DELETE FROM rate_limit_buckets WHERE full_at < \(bind: time)").run()
    }
}

/// Creates the shared rate-limit table on PostgreSQL (SQLite keeps its limits in the process).
struct CreateRateLimitBuckets: AsyncMigration {
    let kind: DatabaseKind

    func prepare(on database: any Database) async throws {
        guard kind == .postgres else { return }
        try await database.sql().raw("CREATE UNLOGGED TABLE rate_limit_buckets (key bytea PRIMARY KEY, full_at double precision NOT NULL)").run()
    }

    func revert(on database: any Database) async throws {
        guard kind == .postgres else { return }
        try await database.sql().raw("DROP TABLE IF EXISTS rate_limit_buckets").run()
    }
}
