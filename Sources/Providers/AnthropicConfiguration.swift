/// How to reach the Anthropic Messages API (or a compatible endpoint).
public struct AnthropicConfiguration: Sendable {
    /// Where the API key goes: `x-api-key` (the API's documented header) or `Authorization: Bearer`.
    public enum AuthScheme: String, Sendable, CaseIterable {
        case apiKeyHeader = "x-api-key"
        case bearer
    }

    public var apiKey: String
    /// Without a trailing slash, e.g. `https://api.anthropic.com`.
    public var baseURL: String
    public var authScheme: AuthScheme
    /// The `anthropic-version` header.
    public var version: String
    /// Retries of a failed attempt before the first token (connection failures, 429, 5xx, 529).
    public var maxRetries: Int
    /// Opening the connection.
    public var connectTimeout: Duration
    /// From sending the request until the response starts.
    public var firstByteTimeout: Duration
    /// The longest silence between two pieces of a streaming reply (the API sends pings).
    public var idleTimeout: Duration
    /// The first retry waits about this long; each further one twice as long, up to `maxBackoff`.
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    /// Waits between retries; tests substitute one that records the waits and returns at once.
    public var sleep: @Sendable (Duration) async throws -> Void

    public init(
        apiKey: String,
        baseURL: String = "https://api.anthropic.com",
        authScheme: AuthScheme = .apiKeyHeader,
        version: String = "2023-06-01",
        maxRetries: Int = 2,
        connectTimeout: Duration = .seconds(10),
        firstByteTimeout: Duration = .seconds(60),
        idleTimeout: Duration = .seconds(60),
        initialBackoff: Duration = .milliseconds(500),
        maxBackoff: Duration = .seconds(8),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.apiKey = apiKey
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.authScheme = authScheme
        self.version = version
        self.maxRetries = maxRetries
        self.connectTimeout = connectTimeout
        self.firstByteTimeout = firstByteTimeout
        self.idleTimeout = idleTimeout
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.sleep = sleep
    }

    /// The wait before retry number `attempt` (1-based): the provider's `retry-after` when it gave
    /// one under a minute, else exponential backoff with up to 25% jitter, as the official SDKs do.
    public func delay(beforeRetry attempt: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter, retryAfter > .zero, retryAfter <= .seconds(60) { return retryAfter }
        let exponential = initialBackoff * (1 << min(max(attempt - 1, 0), 20))
        let capped = min(exponential, maxBackoff)
        return capped * Double.random(in: 0.75...1.0)
    }
}
