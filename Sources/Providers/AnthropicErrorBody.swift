import Foundation

/// The API's error body, `{"type": "error", "error": {"type": "rate_limit_error", "message": "…"}}`,
/// as an HTTP answer or an `error` event, and what each error type and status means.
enum AnthropicErrorBody {
    private struct Body: Decodable {
        struct Detail: Decodable {
            var type: String
            var message: String?
        }
        var error: Detail
    }

    static func providerError(from data: Data, status: Int?, retryAfter: Duration? = nil) -> ProviderError {
        let detail = try? JSONDecoder().decode(Body.self, from: data).error
        let kind = detail.flatMap { Self.kind(errorType: $0.type) } ?? status.map(kindForStatus) ?? .upstream
        let message = detail?.message ?? String(decoding: data.prefix(300), as: UTF8.self)
        return ProviderError(kind, message, status: status, retryAfter: retryAfter)
    }

    static func kind(errorType: String) -> ProviderError.Kind? {
        switch errorType {
        case "invalid_request_error": .invalidRequest
        case "authentication_error": .authentication
        case "permission_error": .permission
        case "not_found_error": .notFound
        case "request_too_large": .requestTooLarge
        case "rate_limit_error": .rateLimited
        case "api_error": .upstream
        case "overloaded_error": .overloaded
        case "timeout_error": .timeout
        default: nil
        }
    }

    static func kindForStatus(_ status: Int) -> ProviderError.Kind {
        switch status {
        case 400: .invalidRequest
        case 401: .authentication
        case 403: .permission
        case 404: .notFound
        case 413: .requestTooLarge
        case 429: .rateLimited
        case 504: .timeout
        case 529: .overloaded
        default: .upstream
        }
    }
}
