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
    public var retries: RetryPolicy
    /// Opening the connection.
    public var connectTimeout: Duration
    /// From sending the request until the response starts.
    public var firstByteTimeout: Duration
    /// The longest silence between two pieces of a streaming reply (the API sends pings).
    public var idleTimeout: Duration
    /// The clock the two timeouts above run on; tests move a manual one.
    public var clock: any Clock<Duration>
    /// Waits between retries; tests substitute one that records the waits and returns at once.
    public var sleep: @Sendable (Duration) async throws -> Void

    public init(
        apiKey: String,
        baseURL: String = "https://api.anthropic.com",
        authScheme: AuthScheme = .apiKeyHeader,
        version: String = "2023-06-01",
        retries: RetryPolicy = RetryPolicy(),
        connectTimeout: Duration = .seconds(10),
        firstByteTimeout: Duration = .seconds(60),
        idleTimeout: Duration = .seconds(60),
        clock: any Clock<Duration> = ContinuousClock(),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.apiKey = apiKey
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.authScheme = authScheme
        self.version = version
        self.retries = retries
        self.connectTimeout = connectTimeout
        self.firstByteTimeout = firstByteTimeout
        self.idleTimeout = idleTimeout
        self.clock = clock
        self.sleep = sleep
    }

    /// The retries and timeouts, as the streaming client takes them.
    public var clientSettings: ClientSettings {
        ClientSettings(retries: retries, connectTimeout: connectTimeout, firstByteTimeout: firstByteTimeout, idleTimeout: idleTimeout,
                       clock: clock, sleep: sleep)
    }
}
