import NIOCore
import Vapor

/// An error as OpenAI's API answers it, `{"error": {"message", "type", "param", "code"}}`: what
/// `/v1/*` answers for every failure, the middleware's included.
struct OpenAIError: Sendable, Equatable {
    var message: String
    var type: String
    var param: String?
    var code: String?

    /// The same failure as ``HTTPProblem`` tells it elsewhere: the type follows the status, the code
    /// is the problem's, or the status's own; a field error names its field as `param`.
    init(_ problem: HTTPProblem.Body) {
        let field = problem.errors?.keys.sorted().first
        if let field, let first = problem.errors?[field]?.first {
            message = "\(field): \(first)"
        } else {
            message = problem.detail ?? problem.title
        }
        param = field
        switch problem.status {
        case 401: type = "authentication_error"
        case 403: type = "permission_error"
        case 429: type = problem.code == "quota_exceeded" ? "insufficient_quota" : "rate_limit_error"
        case 500...: type = "server_error"
        default: type = "invalid_request_error"
        }
        code = problem.code ?? Self.code(forStatus: problem.status)
    }

    private static func code(forStatus status: Int) -> String? {
        switch status {
        case 401: "invalid_api_key"
        case 404: "not_found"
        case 413: "request_too_large"
        case 429: "rate_limit_exceeded"
        case 508: "loop_detected"
        default: nil
        }
    }

    func writeJSON(into out: inout ByteBuffer) {
        out.writeStaticString("{\"error\":{\"message\":")
        out.writeJSONString(message)
        out.writeStaticString(",\"type\":")
        out.writeJSONString(type)
        out.writeStaticString(",\"param\":")
        out.writeJSONString(param)
        out.writeStaticString(",\"code\":")
        out.writeJSONString(code)
        out.writeStaticString("}}")
    }
}

/// Answers every error of `/v1/*` in OpenAI's format: whichever layer made the problem+json (the
/// rate limiter, the host check, the router, a handler), its status and headers are kept and its
/// body is told again as ``OpenAIError``. Sits outside them all.
struct OpenAIErrorMiddleware: AsyncMiddleware {
    let problems: ErrorProblems

    static func isV1(_ path: String) -> Bool { path == "/v1" || path.hasPrefix("/v1/") }

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard Self.isV1(request.path) else { return try await next.respond(to: request) }
        let response: Response
        do {
            response = try await next.respond(to: request)
        } catch {
            response = problems.problem(for: error, request: request).response()
        }
        guard response.headers.first(name: .contentType) == "application/problem+json",
              let body = response.body.buffer,
              let problem = try? JSONDecoder().decode(HTTPProblem.Body.self, from: body)
        else { return response }
        var out = ByteBuffer()
        OpenAIError(problem).writeJSON(into: &out)
        response.headers.replaceOrAdd(name: .contentType, value: "application/json")
        response.body = .init(buffer: out)
        return response
    }
}
