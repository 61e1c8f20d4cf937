/// When a failed attempt at a reply is tried again, and after how long: the whole rule in one place.
///
/// Only before the first piece of text: once text has been handed out, a new attempt would start
/// the reply over, so the failure ends the reply instead (its text kept). Only failures the same
/// request may well get past — connection failures, timeouts, 429, 5xx, 529, a broken stream —
/// never a refusal of the request itself (400, 401, 403, 404, 413). The wait is the provider's
/// `retry-after` when it gave one under a minute, else exponential backoff with up to 25% jitter,
/// as the official SDKs do.
public struct RetryPolicy: Sendable, Equatable {
    /// Retries after the first attempt.
    public var maxRetries: Int
    /// The first retry waits about this long; each further one twice as long, up to `maxBackoff`.
    public var initialBackoff: Duration
    public var maxBackoff: Duration

    public init(maxRetries: Int = 2, initialBackoff: Duration = .milliseconds(500), maxBackoff: Duration = .seconds(8)) {
        self.maxRetries = maxRetries
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    /// The wait before retry number `retry` (1-based) after `error`, or nil when it is not to be retried.
    public func delay(after error: ProviderError, retry: Int, textHandedOut: Bool) -> Duration? {
        guard !textHandedOut, retry <= maxRetries, Self.isTransient(error.kind) else { return nil }
        return delay(beforeRetry: retry, retryAfter: error.retryAfter)
    }

    /// The wait before retry number `retry` (1-based).
    public func delay(beforeRetry retry: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter, retryAfter > .zero, retryAfter <= .seconds(60) { return retryAfter }
        let exponential = initialBackoff * (1 << min(max(retry - 1, 0), 20))
        return min(exponential, maxBackoff) * Double.random(in: 0.75...1.0)
    }

    static func isTransient(_ kind: ProviderError.Kind) -> Bool {
        switch kind {
        case .rateLimited, .overloaded, .upstream, .timeout, .connection, .interrupted: true
        case .authentication, .permission, .notFound, .invalidRequest, .requestTooLarge: false
        }
    }
}
