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

    /// Adds one ended reply of `model` in `chatID` to its owner's day.
    static func record(_ usage: ModelUsage, model: String, chat chatID: UUID, at now: Date, on sql: any SQLDatabase) async throws {
        try await sql.raw("""
            INSERT INTO usage_daily (user_id, day, model, input_tokens, output_tokens, cache_read_input_tokens,
                                     cache_creation_input_tokens, replies)
            SELECT user_id, \(bind: day(of: now)), \(bind: model), \(bind: usage.inputTokens), \(bind: usage.outputTokens),
                   \(bind: usage.cacheReadInputTokens), \(bind: usage.cacheCreationInputTokens), 1
            FROM chats WHERE id = \(bind: chatID)
            ON CONFLICT (user_id, day, model) DO UPDATE SET
                input_tokens = usage_daily.input_tokens + excluded.input_tokens,
                output_tokens = usage_daily.output_tokens + excluded.output_tokens,
                cache_read_input_tokens = usage_daily.cache_read_input_tokens + excluded.cache_read_input_tokens,
                cache_creation_input_tokens = usage_daily.cache_creation_input_tokens + excluded.cache_creation_input_tokens,
                replies = usage_daily.replies + excluded.replies
            """).run()
    }

    /// `2026-11-30`: the UTC day of `date`.
    static func day(of date: Date) -> String { String(RFC3339.string(date).prefix(10)) }

    /// The start of the UTC day after `date`.
    static func nextMidnight(after date: Date) -> Date {
        Date(timeIntervalSince1970: ((date.timeIntervalSince1970 / 86_400).rounded(.down) + 1) * 86_400)
    }

    /// One row of the ledger.
    struct Entry: Sendable {
        var userID: UUID
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
            Entry(userID: try row.decode(column: "user_id", as: UUID.self), day: try row.decode(column: "day", as: String.self),
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

    /// Refuses to start a reply for `user` once today's tokens reach their quota
    /// (``UsageError/quotaExceeded(retryAfter:)``). A reply in flight is never cut: only starts are checked.
    func checkQuota(of user: User, on db: any Database) async throws {
        guard let quota = quota(of: user) else { return }
        let now = clock.now()
        guard try await tokensToday(of: try user.requireID(), on: db) >= quota else { return }
        throw UsageError.quotaExceeded(retryAfter: Int(Self.nextMidnight(after: now).timeIntervalSince(now).rounded(.up)))
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

enum UsageError: HTTPProblemConvertible {
    case quotaExceeded(retryAfter: Int)

    var problem: HTTPProblem {
        switch self {
        case .quotaExceeded(let seconds):
            HTTPProblem(.tooManyRequests, title: "Daily quota used up",
                        detail: "You have used today's tokens; replies start again at midnight UTC.",
                        headers: ["Retry-After": String(max(1, seconds))], code: "quota_exceeded")
        }
    }
}

/// `GET /api/usage/`: the caller's usage today (UTC). Costs appear when the server knows the
/// models' prices (`MODEL_PRICES`); `cost_usd` in total only when every model has one.
struct UsageResponse: Content {
    struct Quota: Content {
        var tokensPerDay: Int?
        var remaining: Int?

        enum CodingKeys: String, CodingKey { case tokensPerDay = "tokens_per_day", remaining }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(tokensPerDay, forKey: .tokensPerDay)
            try container.encode(remaining, forKey: .remaining)
        }
    }

    struct ModelUsage: Content {
        var model: String
        var inputTokens: Int
        var outputTokens: Int
        var cacheReadInputTokens: Int
        var cacheCreationInputTokens: Int
        var replies: Int
        var costUSD: Double?

        enum CodingKeys: String, CodingKey {
            case model, inputTokens = "input_tokens", outputTokens = "output_tokens", cacheReadInputTokens = "cache_read_input_tokens"
            case cacheCreationInputTokens = "cache_creation_input_tokens", replies, costUSD = "cost_usd"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(model, forKey: .model)
            try container.encode(inputTokens, forKey: .inputTokens)
            try container.encode(outputTokens, forKey: .outputTokens)
            try container.encode(cacheReadInputTokens, forKey: .cacheReadInputTokens)
            try container.encode(cacheCreationInputTokens, forKey: .cacheCreationInputTokens)
            try container.encode(replies, forKey: .replies)
            try container.encode(costUSD, forKey: .costUSD)
        }
    }

    var periodStart: Date
    var periodEnd: Date
    var inputTokens: Int
    var outputTokens: Int
    var cacheReadInputTokens: Int
    var cacheCreationInputTokens: Int
    var replies: Int
    var quota: Quota
    var costUSD: Double?
    var models: [ModelUsage]

    enum CodingKeys: String, CodingKey {
        case periodStart = "period_start", periodEnd = "period_end", inputTokens = "input_tokens", outputTokens = "output_tokens"
        case cacheReadInputTokens = "cache_read_input_tokens", cacheCreationInputTokens = "cache_creation_input_tokens"
        case replies, quota, costUSD = "cost_usd", models
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(periodStart, forKey: .periodStart)
        try container.encode(periodEnd, forKey: .periodEnd)
        try container.encode(inputTokens, forKey: .inputTokens)
        try container.encode(outputTokens, forKey: .outputTokens)
        try container.encode(cacheReadInputTokens, forKey: .cacheReadInputTokens)
        try container.encode(cacheCreationInputTokens, forKey: .cacheCreationInputTokens)
        try container.encode(replies, forKey: .replies)
        try container.encode(quota, forKey: .quota)
        try container.encode(costUSD, forKey: .costUSD)
        try container.encode(models, forKey: .models)
    }
}

/// `GET /api/usage/`.
struct UsageController: RouteCollection {
    let ledger: UsageLedger

    func boot(routes: any RoutesBuilder) throws {
        routes.get("usage", use: usage)
    }

    func usage(req: Request) async throws -> UsageResponse {
        try await ledger.today(of: try req.currentUser, on: req.db)
    }
}
