import Fluent
import Foundation
import Providers
import SQLKit
import Vapor

/// What each user's replies consumed, day by day (UTC) and model by model, from the provider's own
/// figures (``ModelUsage``: input, output, cache reads and cache writes apart), and the daily quota
/// that caps it. Every reply is counted once, by whichever path stored its end
/// (``ReplyStore/finish(_:_:now:)``), in the same write.
struct UsageLedger: Sendable {
    let settings: UsageSettings
    let clock: any WallClock
    /// How the per-user quota lock is taken.
    let kind: DatabaseKind

    /// Whose day a reply counts in.
    enum Owner {
        /// The user (their chat may be gone: usage is theirs).
        case user(UUID)
        /// Whoever owns the chat.
        case ownerOf(chat: UUID)
    }

    /// Adds one ended reply of `model` to its owner's day.
    static func record(_ usage: ModelUsage, model: String, for owner: Owner, at now: Date, on sql: any SQLDatabase) async throws {
        let source: SQLQueryString = switch owner {
        // Always one row: a user deleted while their reply ran counts without the account (null).
        case .user(let id): "SELECT (SELECT id FROM users WHERE id = \(bind: id)) AS owner"
        case .ownerOf(let chat): "SELECT user_id AS owner FROM chats WHERE id = \(bind: chat)"
        }
        try await sql.raw("""
            INSERT INTO usage_daily (user_id, day, model, input_tokens, output_tokens, cache_read_input_tokens,
                                     cache_creation_input_tokens, replies)
            SELECT owner, \(bind: day(of: now)), \(bind: model), \(bind: usage.inputTokens), \(bind: usage.outputTokens),
                   \(bind: usage.cacheReadInputTokens), \(bind: usage.cacheCreationInputTokens), 1
            FROM (\(source)) source WHERE true
            \(unsafeRaw: addToDay)
            """).run()
    }

    /// (An upsert's SELECT needs its WHERE: SQLite would read `ON CONFLICT` as a join's otherwise.)
    private static let addToDay = """
        ON CONFLICT (user_id, day, model) DO UPDATE SET
            input_tokens = usage_daily.input_tokens + excluded.input_tokens,
            output_tokens = usage_daily.output_tokens + excluded.output_tokens,
            cache_read_input_tokens = usage_daily.cache_read_input_tokens + excluded.cache_read_input_tokens,
            cache_creation_input_tokens = usage_daily.cache_creation_input_tokens + excluded.cache_creation_input_tokens,
            replies = usage_daily.replies + excluded.replies
        """

    /// `2026-11-30`: the UTC day of `date`.
    static func day(of date: Date) -> String { String(RFC3339.string(date).prefix(10)) }

    /// The start of the UTC day after `date`.
    static func nextMidnight(after date: Date) -> Date {
        Date(timeIntervalSince1970: ((date.timeIntervalSince1970 / 86_400).rounded(.down) + 1) * 86_400)
    }

    /// One row of the ledger.
    struct Entry: Sendable {
        /// Nil for an account deleted since (its usage is kept).
        var userID: UUID?
        var day: String
        var model: String
        var tokens: TokenCounts
        var replies: Int
    }

    /// The ledger's rows from `firstDay` to `lastDay` (inclusive), of one user or of everyone.
    func entries(from firstDay: String, to lastDay: String, of userID: UUID? = nil, on db: any Database) async throws -> [Entry] {
        var query = try db.sql().select()
            .columns("user_id", "day", "model", "input_tokens", "output_tokens", "cache_read_input_tokens",
                     "cache_creation_input_tokens", "replies")
            .from("usage_daily")
            .where("day", .greaterThanOrEqual, SQLBind(firstDay))
            .where("day", .lessThanOrEqual, SQLBind(lastDay))
        if let userID { query = query.where("user_id", .equal, SQLBind(userID)) }
        return try await query.orderBy("day").orderBy("model").all().map { row in
            Entry(userID: try row.decode(column: "user_id", as: UUID?.self), day: try row.decode(column: "day", as: String.self),
                  model: try row.decode(column: "model", as: String.self),
                  tokens: TokenCounts(input: try row.decode(column: "input_tokens", as: Int.self),
                                      output: try row.decode(column: "output_tokens", as: Int.self),
                                      cacheRead: try row.decode(column: "cache_read_input_tokens", as: Int.self),
                                      cacheWrite: try row.decode(column: "cache_creation_input_tokens", as: Int.self)),
                  replies: try row.decode(column: "replies", as: Int.self))
        }
    }

    /// The tokens a day `user` may spend: theirs when the admin set it (-1: no limit), else the
    /// server's; nil for no limit.
    func quota(of user: User) -> Int? {
        switch user.dailyTokenQuota {
        case .some(let quota) where quota < 0: nil
        case .some(let quota): Int(quota)
        case .none: settings.quotaTokensPerDay
        }
    }

    /// Tokens of every kind `userID` used today (UTC).
    func tokensToday(of userID: UUID, on db: any Database) async throws -> Int {
        let today = Self.day(of: clock.now())
        return try await entries(from: today, to: today, of: userID, on: db).reduce(0) { $0 + $1.tokens.total }
    }

    /// Admits a reply of `userID`, whose prompt is estimated at `estimate` tokens, under their daily
    /// `quota` (nil: none), inside the transaction that stores it: it may start only while today's
    /// tokens and what the replies already running have reserved (their prompts' estimates; a `/v1`
    /// completion's in `usage_reservations`) stay under the quota. Taken under the user's lock, so that concurrent starts are counted one after
    /// another; ``UsageError/quotaExceeded(retryAfter:)`` otherwise (and the transaction stores
    /// nothing). Answers the tokens the new reply reserves (its `reserved_tokens`).
    func admitReply(of userID: UUID, quota: Int?, estimate: Int, on db: any Database) async throws -> Int {
        guard let quota else { return estimate }
        try await db.lockForWriting("quota:" + userID.lowercased, on: kind)
        let now = clock.now()
        let used = try await tokensToday(of: userID, on: db)
        let reserved = try await db.sql().raw("""
            SELECT CAST(COALESCE(SUM(m.reserved_tokens), 0) AS BIGINT) AS reserved FROM chats c JOIN messages m ON m.chat_id = c.id
            WHERE c.user_id = \(bind: userID) AND m.status = 'streaming'
            """).first()?.decode(column: "reserved", as: Int.self) ?? 0
        let inFlight = try await Self.reservedElsewhere(by: userID, at: now, on: db)
        guard used + reserved + inFlight < quota else {
            throw UsageError.quotaExceeded(retryAfter: Int(Self.nextMidnight(after: now).timeIntervalSince(now).rounded(.up)))
        }
        return estimate
    }

    /// What `GET /api/usage/` answers for `user`: today, in total and by model, with the quota.
    func today(of user: User, on db: any Database) async throws -> UsageResponse {
        let now = clock.now()
        let today = Self.day(of: now)
        let entries = try await entries(from: today, to: today, of: try user.requireID(), on: db)
        let total = entries.reduce(TokenCounts()) { $0 + $1.tokens }
        let quota = quota(of: user)
        let costs = entries.map { entry in settings.prices[entry.model].map { $0.cost(of: entry.tokens) } }
        let start = Date(timeIntervalSince1970: (now.timeIntervalSince1970 / 86_400).rounded(.down) * 86_400)
        return UsageResponse(
            periodStart: start, periodEnd: Self.nextMidnight(after: now),
            inputTokens: total.input, outputTokens: total.output, cacheReadInputTokens: total.cacheRead,
            cacheCreationInputTokens: total.cacheWrite, replies: entries.reduce(0) { $0 + $1.replies },
            quota: .init(tokensPerDay: quota, remaining: quota.map { max(0, $0 - total.total) }),
            costUSD: costs.isEmpty || costs.contains(where: { $0 == nil }) ? nil : costs.compactMap { $0 }.reduce(0, +),
            models: zip(entries, costs).map { entry, cost in
                .init(model: entry.model, inputTokens: entry.tokens.input, outputTokens: entry.tokens.output,
                      cacheReadInputTokens: entry.tokens.cacheRead, cacheCreationInputTokens: entry.tokens.cacheWrite,
                      replies: entry.replies, costUSD: cost)
            }
        )
    }
}
