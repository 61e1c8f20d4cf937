import Fluent
import SQLKit

/// The usage feature's tables.
enum Usage {
    static func migrations(_ kind: DatabaseKind) -> [any Migration] { [CreateUsageDaily(kind: kind), AddUserQuota(), CreateUsageReservations(), KeepUsageOfDeletedAccounts(kind: kind)] }
}

/// Creates `usage_daily`: each user's tokens by day (UTC) and model, input, output, cache reads
/// and cache writes apart, and the replies that used them; filled from the replies stored already.
struct CreateUsageDaily: AsyncMigration {
    let kind: DatabaseKind

    func prepare(on database: any Database) async throws {
        let sql = try database.sql()
        let big = kind == .sqlite ? "INTEGER" : "BIGINT"
        try await sql.raw("""
            CREATE TABLE usage_daily (
                user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                day TEXT NOT NULL,
                model TEXT NOT NULL,
                input_tokens \(unsafeRaw: big) NOT NULL DEFAULT 0,
                output_tokens \(unsafeRaw: big) NOT NULL DEFAULT 0,
                cache_read_input_tokens \(unsafeRaw: big) NOT NULL DEFAULT 0,
                cache_creation_input_tokens \(unsafeRaw: big) NOT NULL DEFAULT 0,
                replies INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (user_id, day, model)
            )
            """).run()
        try await sql.raw("CREATE INDEX idx_usage_daily_day ON usage_daily (day)").run()
        let day = kind == .sqlite
            ? "strftime('%Y-%m-%d', m.created_at, 'unixepoch')"
            : "to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        try await sql.raw("""
            INSERT INTO usage_daily (user_id, day, model, input_tokens, output_tokens, cache_read_input_tokens,
                                     cache_creation_input_tokens, replies)
            SELECT c.user_id, \(unsafeRaw: day), m.model, SUM(m.input_tokens), SUM(m.output_tokens),
                   SUM(m.cache_read_input_tokens), SUM(m.cache_creation_input_tokens), COUNT(*)
            FROM messages m JOIN chats c ON c.id = m.chat_id
            WHERE m.role = 'assistant' AND m.status <> 'streaming' AND m.created_at IS NOT NULL
            GROUP BY c.user_id, \(unsafeRaw: day), m.model
            """).run()
    }

    func revert(on database: any Database) async throws {
        try await database.sql().raw("DROP TABLE usage_daily").run()
    }
}

/// Adds `users.daily_token_quota`: null for the server's default (`QUOTA_TOKENS_PER_DAY`), -1 for
/// no limit, else the tokens a day the user may spend.
struct AddUserQuota: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(User.schema).field("daily_token_quota", .int64).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(User.schema).deleteField("daily_token_quota").update()
    }
}

/// Keeps what deleted accounts used: `usage_daily.user_id` becomes null when its user is deleted
/// (the totals by day and model stay true), instead of the rows going with the account. The table
/// is rebuilt (SQLite cannot change a foreign key in place); its key becomes a unique constraint.
struct KeepUsageOfDeletedAccounts: AsyncMigration {
    let kind: DatabaseKind

    func prepare(on database: any Database) async throws {
        try await rebuild(on: database, userColumn: "user_id UUID REFERENCES users (id) ON DELETE SET NULL",
                          key: "CONSTRAINT uq_usage_daily_user_day_model UNIQUE (user_id, day, model)", keep: "TRUE")
    }

    func revert(on database: any Database) async throws {
        try await rebuild(on: database, userColumn: "user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE",
                          key: "PRIMARY KEY (user_id, day, model)", keep: "user_id IS NOT NULL")
    }

    private func rebuild(on database: any Database, userColumn: String, key: String, keep: String) async throws {
        let big = kind == .sqlite ? "INTEGER" : "BIGINT"
        try await database.transaction { tx in
            let sql = try tx.sql()
            // Instances still running count replies meanwhile: they wait for the copy rather than
            // write into the table it is about to drop.
            if kind != .sqlite { try await sql.raw("LOCK TABLE usage_daily IN EXCLUSIVE MODE").run() }
            try await sql.raw("""
                CREATE TABLE usage_daily_next (
                    \(unsafeRaw: userColumn),
                    day TEXT NOT NULL,
                    model TEXT NOT NULL,
                    input_tokens \(unsafeRaw: big) NOT NULL DEFAULT 0,
                    output_tokens \(unsafeRaw: big) NOT NULL DEFAULT 0,
                    cache_read_input_tokens \(unsafeRaw: big) NOT NULL DEFAULT 0,
                    cache_creation_input_tokens \(unsafeRaw: big) NOT NULL DEFAULT 0,
                    replies INTEGER NOT NULL DEFAULT 0,
                    \(unsafeRaw: key)
                )
                """).run()
            try await sql.raw("""
                INSERT INTO usage_daily_next (user_id, day, model, input_tokens, output_tokens, cache_read_input_tokens,
                                              cache_creation_input_tokens, replies)
                SELECT user_id, day, model, input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens, replies
                FROM usage_daily WHERE \(unsafeRaw: keep)
                """).run()
            try await sql.raw("DROP TABLE usage_daily").run()
            try await sql.raw("ALTER TABLE usage_daily_next RENAME TO usage_daily").run()
            try await sql.raw("CREATE INDEX idx_usage_daily_day ON usage_daily (day)").run()
        }
    }
}
