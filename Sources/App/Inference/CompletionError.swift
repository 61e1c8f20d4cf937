import Providers
import Vapor

/// Why `/v1/chat/completions` answered no reply (told in OpenAI's format by ``OpenAIErrorMiddleware``).
enum CompletionError: HTTPProblemConvertible {
    case modelNotFound(String)
    case unsupported(field: String, String)
    /// The request came back to the instance that relayed it.
    case loop
    case shuttingDown
    /// The model's provider failed (or the reply was stopped).
    case upstream(any Error)

    var problem: HTTPProblem {
        switch self {
        case .modelNotFound(let model):
            HTTPProblem(.notFound, title: "Unknown model",
                        detail: "The model '\(model)' does not exist or is not offered now; GET /v1/models lists those that are.",
                        code: "model_not_found")
        case .unsupported(let field, let message):
            HTTPProblem(.badRequest, title: "Unsupported attachment", detail: message, fieldErrors: [field: [message]],
                        code: "unsupported_attachment")
        case .loop:
            HTTPProblem(.loopDetected, title: "Loop detected",
                        detail: "This request was relayed by this server before: a provider of this server points back at it.",
                        code: "loop_detected")
        case .shuttingDown:
            HTTPProblem(.serviceUnavailable, title: "Shutting down", detail: "The server is shutting down; try again.",
                        headers: ["Retry-After": "5"])
        case .upstream(let error as ProviderError):
            Self.problem(for: error)
        case .upstream:
            HTTPProblem(.serviceUnavailable, title: "Reply stopped", detail: "The reply was stopped before it ended.")
        }
    }

    /// The caller's status for a provider's failure: their request's fault (400), a limit to wait
    /// for (429, 503, with the provider's `retry-after`), or the gateway's (502, 504).
    private static func problem(for error: ProviderError) -> HTTPProblem {
        var headers = HTTPHeaders()
        if let wait = error.retryAfter { headers.add(name: .retryAfter, value: String(max(1, Int(wait.seconds.rounded(.up))))) }
        let (status, code): (HTTPResponseStatus, String) = switch error.kind {
        case .invalidRequest, .requestTooLarge: (.badRequest, "upstream_invalid_request")
        case .notFound: (.notFound, "model_not_found")
        case .rateLimited: (.tooManyRequests, "upstream_rate_limited")
        case .overloaded: (.serviceUnavailable, "upstream_overloaded")
        case .timeout: (.gatewayTimeout, "upstream_timeout")
        case .authentication, .permission, .upstream, .connection, .interrupted: (.badGateway, "upstream_error")
        }
        // What the provider said about the request goes to the caller; what it said about this
        // server (its key, its address, its own failure) stays in the log.
        let detail = switch error.kind {
        case .authentication, .permission, .upstream, .connection, .interrupted:
            "The model provider failed (\(error.kind.rawValue)); the server logged the details."
        default:
            error.description
        }
        return HTTPProblem(status, title: "The model provider failed", detail: detail, headers: headers, code: code)
    }
}
