import Foundation
import Vapor

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
