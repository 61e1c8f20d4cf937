/// Limits on password guessing that cannot be turned against an account's owner.
///
/// Only failures count. Per account and client (an IPv4 address or an IPv6 /64) the limit is tight;
/// per account, from anywhere, it is loose. A client that has been failing for an account meets
/// both; a client with no recent failure for it is let try even while the account as a whole is
/// over its limit, so a stranger's guesses never keep the owner (or a superuser) out, and a
/// guesser spread over many addresses gets one wrong try per address once the account's budget is
/// spent. The API and the admin each have their own throttle, so a flood at one does not close the other.
struct LoginThrottle: Sendable {
    let limiter: RateLimiter
    /// Failures per account from one client.
    let perClient: RateLimitPolicy
    /// Failures per account from every client.
    let perAccount: RateLimitPolicy

    /// Throws ``RateLimitExceeded`` when `client` may not try a password for `email` now.
    func admit(email: String, client: String) async throws {
        let pair = Self.pairKey(email: email, client: client)
        try await limiter.checkWithoutCounting(perClient, key: pair)
        if try await limiter.hasRecentRequests(perClient, key: pair) {
            try await limiter.checkWithoutCounting(perAccount, key: email)
        }
    }

    /// Counts a wrong password (or unknown email, or inactive account) from `client` for `email`.
    func recordFailure(email: String, client: String) async throws {
        try await limiter.count(perClient, key: Self.pairKey(email: email, client: client))
        try await limiter.count(perAccount, key: email)
    }

    private static func pairKey(email: String, client: String) -> String { email + "\u{0}" + client }
}
