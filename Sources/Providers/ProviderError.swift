/// Why a reply could not be had from the model provider.
public struct ProviderError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case authentication
        case permission
        case notFound
        case invalidRequest
        case requestTooLarge
        case rateLimited
        case overloaded
        case upstream
        case timeout
        case connection
        /// The reply stream broke off or ended before the model finished.
        case interrupted
    }

    public var kind: Kind
    public var message: String
    /// The upstream HTTP status, when there was one.
    public var status: Int?
    /// How long the provider asked us to wait (`retry-after`), when it did.
    public var retryAfter: Duration?
    /// Usage reported before the failure, when any.
    public var usage: ModelUsage?

    public init(_ kind: Kind, _ message: String, status: Int? = nil, retryAfter: Duration? = nil, usage: ModelUsage? = nil) {
        self.kind = kind
        self.message = message
        self.status = status
        self.retryAfter = retryAfter
        self.usage = usage
    }

    public var description: String {
        let summary: String
        switch kind {
        case .authentication: summary = "The model provider refused the API key"
        case .permission: summary = "The API key may not use this model"
        case .notFound: summary = "The model provider does not know this model"
        case .invalidRequest: summary = "The model provider rejected the request"
        case .requestTooLarge: summary = "The conversation is too large for the model provider"
        case .rateLimited: summary = "The model provider's rate limit was reached"
        case .overloaded: summary = "The model provider is overloaded"
        case .upstream: summary = "The model provider failed"
        case .timeout: summary = "The model provider did not answer in time"
        case .connection: summary = "The model provider could not be reached"
        case .interrupted: summary = "The reply stream broke off"
        }
        let statusText = status.map { " (HTTP \($0))" } ?? ""
        return message.isEmpty ? summary + statusText : "\(summary)\(statusText): \(message)"
    }
}
