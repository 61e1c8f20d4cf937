import Fluent
import Foundation
import Providers
import SQLKit

/// The quota's hold on replies that are stored nowhere (a `/v1` completion): each reserves its
/// prompt's estimate in `usage_reservations` while it runs, as a chat reply does in its message
/// row, so that concurrent requests cannot together spend past the quota; its usage is recorded
/// and its reservation dropped in one transaction when it ends. A reservation its instance never
/// dropped (the process died) stops counting at `expires_at`.
extension UsageLedger {
    /// How long a reservation counts at most.
    static let reservationLifetime: TimeInterval = 3600

    /// Admits a reply of `userID` (prompt estimated at `estimate`) under `quota`; answers the id of
    /// its reservation, nil when there is no quota to hold (nothing written). 429
    /// ``UsageError/quotaExceeded(retryAfter:)`` when today's usage and what runs already reach it.
    func reserve(for userID: UUID, quota: Int?, estimate: Int, on db: any Database) async throws -> UUID? {
        guard quota != nil else { return nil }
        return try await db.transaction { tx in
            let reserved = try await admitReply(of: userID, quota: quota, estimate: estimate, on: tx)
            let id = UUID()
            let now = clock.now()
            try await tx.sql().raw("""
                DELETE FROM usage_reservations WHERE user_id = \(bind: userID) AND expires_at <= \(bind: Int(now.timeIntervalSince1970))
                """).run()
            try await tx.sql().raw("""
                INSERT INTO usage_reservations (id, user_id, reserved_tokens, expires_at)
                VALUES (\(bind: id), \(bind: userID), \(bind: reserved), \(bind: Int(now.timeIntervalSince1970 + Self.reservationLifetime)))
                """).run()
            return id
        }
    }

    /// Records an ended reply's `usage` of `model` for `userID` and drops its reservation, together.
    func settle(_ reservation: UUID?, usage: ModelUsage, model: String, for userID: UUID, on db: any Database) async throws {
        let now = clock.now()
        try await db.transaction { tx in
            try await Self.record(usage, model: model, for: .user(userID), at: now, on: try tx.sql())
            if let reservation {
                try await tx.sql().raw("DELETE FROM usage_reservations WHERE id = \(bind: reservation)").run()
            }
        }
    }

    /// Tokens `userID`'s running `/v1` completions hold now.
    static func reservedElsewhere(by userID: UUID, at now: Date, on db: any Database) async throws -> Int {
        try await db.sql().raw("""
            SELECT CAST(COALESCE(SUM(reserved_tokens), 0) AS BIGINT) AS reserved FROM usage_reservations
            WHERE user_id = \(bind: userID) AND expires_at > \(bind: Int(now.timeIntervalSince1970))
            """).first()?.decode(column: "reserved", as: Int.self) ?? 0
    }
}

/// Creates `usage_reservations`: the prompts' estimates of the replies that run outside any chat.
struct CreateUsageReservations: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.sql().raw("""
            CREATE TABLE usage_reservations (
                id UUID PRIMARY KEY,
                user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                reserved_tokens BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )
            """).run()
        try await database.sql().raw("CREATE INDEX idx_usage_reservations_user ON usage_reservations (user_id)").run()
    }

    func revert(on database: any Database) async throws {
        try await database.sql().raw("DROP TABLE usage_reservations").run()
    }
}
