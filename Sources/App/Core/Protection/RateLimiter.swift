import Foundation
import Vapor

/// Over a limit: 429 with `Retry-After` and the RateLimit headers.
struct RateLimitExceeded: HTTPProblemConvertible {
    let decision: RateLimitDecision

    var problem: HTTPProblem {
        let title = decision.policy.name == "replies" ? "Reply limit reached" : "Too many requests"
        var headers = RateLimitHeaders.headers(for: decision)
        headers.replaceOrAdd(name: .retryAfter, value: String(Int(decision.retryAfter.rounded(.up))))
        return HTTPProblem(.tooManyRequests, title: title,
                           detail: "The limit is \(decision.policy.limit) per \(RateLimitHeaders.periodName(decision.policy.period)); try again in \(Int(decision.retryAfter.rounded(.up))) s.",
                           headers: headers)
    }
}

/// Checks requests against the limits and remembers, per request, the tightest decision so far
/// so that the response can say how much room is left.
struct RateLimiter: Sendable {
    let store: any RateLimitStore
    let clock: any WallClock
    let enabled: Bool
    let metrics: AppMetrics

    /// Counts one request for `key` — or, when the in-process store has no room for `key`, for
    /// `coarser` (its network, its account) — and answers the decision; throws ``RateLimitExceeded``
    /// when over `policy`.
    @discardableResult
    func check(_ policy: RateLimitPolicy, key: String, coarser: String? = nil, for request: Request?) async throws -> RateLimitDecision? {
        guard enabled else { return nil }
        var keys = [RateLimitKey(policy: policy.name, client: key)]
        if let coarser { keys.append(RateLimitKey(policy: policy.name, client: "coarse:" + coarser)) }
        let decision = try await store.acquire(keys, policy: policy, now: clock.now())
        if let request { request.rateLimitDecision = RateLimitHeaders.tighter(request.rateLimitDecision, decision) }
        try refuse(unless: decision)
        return decision
    }

    /// Gives back the request `decision` counted (it turned out not to count: a right password).
    func refund(_ decision: RateLimitDecision?) async throws {
        guard enabled, let decision, let key = decision.counted else { return }
        try await store.refund(key, policy: decision.policy, now: clock.now())
    }

    private func refuse(unless decision: RateLimitDecision) throws(RateLimitExceeded) {
        guard decision.allowed else {
            metrics.rateLimitRejected(decision.policy.name)
            throw RateLimitExceeded(decision: decision)
        }
    }
}

/// The `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers (IETF draft).
enum RateLimitHeaders {
    static func headers(for decision: RateLimitDecision) -> HTTPHeaders {
        [
            "RateLimit-Limit": String(decision.policy.limit),
            "RateLimit-Remaining": String(decision.remaining),
            "RateLimit-Reset": String(Int(decision.resetAfter.rounded(.up))),
        ]
    }

    /// The decision that leaves the smaller share of its limit.
    static func tighter(_ a: RateLimitDecision?, _ b: RateLimitDecision) -> RateLimitDecision {
        guard let a else { return b }
        if a.allowed != b.allowed { return a.allowed ? b : a }
        return Double(a.remaining) / Double(a.policy.limit) <= Double(b.remaining) / Double(b.policy.limit) ? a : b
    }

    static func periodName(_ period: TimeInterval) -> String {
        switch period {
        case 1: "second"
        case 60: "minute"
        case 3600: "hour"
        case 86_400: "day"
        default: "\(Int(period)) s"
        }
    }
}

extension Request {
    private struct DecisionKey: StorageKey {
        typealias Value = RateLimitDecision
    }

    var rateLimitDecision: RateLimitDecision? {
        get { storage[DecisionKey.self] }
        set { storage[DecisionKey.self] = newValue }
    }
}

/// Limits every request: by user when it carries a valid access token, else by client IP. Sits
/// outside the problem middleware so that every response, errors too, carries the RateLimit
/// headers of the tightest limit the request met; its own failures become problems here.
struct RateLimitMiddleware: AsyncMiddleware {
    let limiter: RateLimiter
    let signer: TokenSigner
    let keys: APIKeys
    let userLimit: RateLimitPolicy
    let anonymousLimit: RateLimitPolicy
    let problems: ErrorProblems

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        // Load balancers and scrapers must always get through: a busy minute must not take an instance out.
        if ServicePaths.isProbe(request.path) { return try await next.respond(to: request) }
        do {
            let token = request.headers.bearerToken
            if let token, APIKeys.isKey(token), let identity = try? await keys.identity(of: token, on: request.db) {
                // A key's calls count toward its owner's limit, as their access token's do.
                request.verifiedAPIKey = identity
                try await limiter.check(userLimit, key: identity.userID.lowercased, for: request)
            } else if let token, !APIKeys.isKey(token), let claims = try? await signer.verify(token, as: .access) {
                request.verifiedAccessClaims = claims
                try await limiter.check(userLimit, key: claims.userID, for: request)
            } else {
                try await limiter.check(anonymousLimit, key: request.clientKey, coarser: request.clientNetwork, for: request)
            }
        } catch {
            return problems.problem(for: error, request: request).response()
        }
        let response = try await next.respond(to: request)
        if let decision = request.rateLimitDecision, response.status != .tooManyRequests {
            for (name, value) in RateLimitHeaders.headers(for: decision) { response.headers.replaceOrAdd(name: name, value: value) }
        }
        return response
    }
}

/// A further limit on a group of routes, per client (register, login and the like).
struct RouteRateLimitMiddleware: AsyncMiddleware {
    let limiter: RateLimiter
    let policy: RateLimitPolicy

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        try await limiter.check(policy, key: request.clientKey, coarser: request.clientNetwork, for: request)
        return try await next.respond(to: request)
    }
}
