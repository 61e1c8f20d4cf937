import Foundation

/// Rate limits, proxies, TLS headers, timeouts, metrics access and log format.
public struct ProtectionSettings: Sendable {
    public var rateLimitsEnabled: Bool
    /// Where limits are counted.
    public enum RateLimitStoreChoice: String, Sendable {
        /// In the database when it is PostgreSQL (shared by every instance), else in this process.
        case auto
        case memory
        case postgres
    }
    public var rateLimitStore: RateLimitStoreChoice
    /// Authenticated API calls, per user.
    public var userLimit: RateLimitPolicy
    /// Calls without a valid access token, per client IP.
    public var anonymousLimit: RateLimitPolicy
    /// Register, login, refresh, logout and sign-in through providers, per client IP.
    public var authLimit: RateLimitPolicy
    /// Failed logins per account (email) from one client: tight.
    public var loginFailureLimit: RateLimitPolicy
    /// Failed logins per account from every client: loose (see ``LoginThrottle``).
    public var loginAccountLimit: RateLimitPolicy
    /// The admin sign-in's own limits, per account and client and per account.
    public var adminLoginFailureLimit: RateLimitPolicy
    public var adminLoginAccountLimit: RateLimitPolicy
    /// Replies started per user (each costs money).
    public var replyLimit: RateLimitPolicy
    /// Keys the in-process limiter keeps at most (idle ones are forgotten first).
    public var rateLimitMaxKeys: Int
    /// Event streams one user may hold open at once.
    public var maxStreamsPerUser: Int
    /// Proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed (IPs or CIDR ranges).
    public var trustedProxies: [IPRange]
    public var sslRedirect: Bool
    /// `Strict-Transport-Security: max-age=…` on HTTPS responses; 0 sends none.
    public var hstsSeconds: Int
    /// Longest time a request may take to produce its response head.
    public var requestTimeout: Duration
    /// Connections idle this long are closed.
    public var idleTimeout: Duration
    /// Bearer token for `/metrics`; without one, only loopback clients may read it.
    public var metricsToken: String?
    public var jsonLogs: Bool

    init(_ read: SettingsReader, debug: Bool) throws(SettingsError) {
        rateLimitsEnabled = try read.bool("RATE_LIMIT_ENABLED", default: true)
        let store = read.string("RATE_LIMIT_STORE")?.lowercased() ?? "auto"
        guard let choice = RateLimitStoreChoice(rawValue: store) else {
            throw SettingsError(key: "RATE_LIMIT_STORE", problem: "expected auto, memory or postgres, got '\(store)'")
        }
        rateLimitStore = choice
        userLimit = try read.rateLimit("RATE_LIMIT_USER", name: "user", default: "120/minute")
        anonymousLimit = try read.rateLimit("RATE_LIMIT_ANONYMOUS", name: "anonymous", default: "60/minute")
        authLimit = try read.rateLimit("RATE_LIMIT_AUTH", name: "auth", default: "10/minute")
        loginFailureLimit = try read.rateLimit("RATE_LIMIT_LOGIN_FAILURES", name: "login_failures", default: "10/hour")
        loginAccountLimit = try read.rateLimit("RATE_LIMIT_LOGIN_ACCOUNT", name: "login_account", default: "100/hour")
        adminLoginFailureLimit = try read.rateLimit("RATE_LIMIT_ADMIN_LOGIN_FAILURES", name: "admin_login_failures", default: "5/hour")
        adminLoginAccountLimit = try read.rateLimit("RATE_LIMIT_ADMIN_LOGIN_ACCOUNT", name: "admin_login_account", default: "20/hour")
        replyLimit = try read.rateLimit("RATE_LIMIT_REPLIES", name: "replies", default: "200/hour")
        rateLimitMaxKeys = try read.int("RATE_LIMIT_MAX_KEYS", default: 100_000, in: 100...100_000_000)
        maxStreamsPerUser = try read.int("MAX_STREAMS_PER_USER", default: 20, in: 1...100_000)
        var proxies: [IPRange] = []
        for raw in read.list("TRUSTED_PROXIES", default: []) {
            guard let range = IPRange(raw) else {
                throw SettingsError(key: "TRUSTED_PROXIES", problem: "'\(raw)' is not an IP address or CIDR range (e.g. 10.0.0.0/8)")
            }
            proxies.append(range)
        }
        trustedProxies = proxies
        sslRedirect = try read.bool("SECURE_SSL_REDIRECT", default: false)
        hstsSeconds = try read.int("SECURE_HSTS_SECONDS", default: 0, in: 0...100_000_000)
        requestTimeout = try read.duration("REQUEST_TIMEOUT", default: .seconds(30))
        idleTimeout = try read.duration("HTTP_IDLE_TIMEOUT", default: .seconds(75))
        metricsToken = read.string("METRICS_TOKEN")
        switch read.string("LOG_FORMAT")?.lowercased() ?? (debug ? "text" : "json") {
        case "json": jsonLogs = true
        case "text": jsonLogs = false
        case let other: throw SettingsError(key: "LOG_FORMAT", problem: "expected json or text, got '\(other)'")
        }
    }
}

extension SettingsReader {
    /// A limit such as `120/minute`, `10/second`, `200/hour` or `1000/day`.
    func rateLimit(_ key: String, name: String, default fallback: String) throws(SettingsError) -> RateLimitPolicy {
        let raw = string(key) ?? fallback
        guard let policy = RateLimitPolicy(name: name, raw) else {
            throw SettingsError(key: key, problem: "expected a limit such as 120/minute, 10/second, 200/hour or 1000/day, got '\(raw)'")
        }
        return policy
    }
}
