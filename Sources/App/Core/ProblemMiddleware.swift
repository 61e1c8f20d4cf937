import Vapor

/// Turns every error — ours and Vapor's — into an RFC 9457 problem+json response.
/// Replaces Vapor's `ErrorMiddleware`; internal details are shown only in DEBUG.
struct ProblemMiddleware: AsyncMiddleware {
    let routes: RouteMethodIndex
    let problems: ErrorProblems

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        do {
            return try await next.respond(to: request)
        } catch is RouteNotFound {
            let allowed = routes.methods(forPath: request.path)
            if allowed.isEmpty {
                return RequestError.routeNotFound(method: request.method.rawValue, path: request.path).problem.response()
            }
            if request.method == .OPTIONS {
                return Response(status: .noContent, headers: ["Allow": (allowed + ["OPTIONS"]).joined(separator: ", ")])
            }
            return RequestError.methodNotAllowed(method: request.method.rawValue, allowed: allowed).problem.response()
        } catch {
            return problems.problem(for: error, request: request).response()
        }
    }
}

/// What the client is told of any error: the one mapping from errors to problems, for the problem
/// middleware and for the few layers outside it (the rate limiter).
struct ErrorProblems: Sendable {
    /// DEBUG: a 500 shows what went wrong.
    let showInternalErrors: Bool

    func problem(for error: any Error, request: Request) -> HTTPProblem {
        switch error {
        case let convertible as any HTTPProblemConvertible:
            let problem = convertible.problem
            if problem.status.code >= 500 {
                request.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            return problem
        case let decoding as DecodingError:
            return RequestError(decoding: decoding).problem
        case let abort as any AbortError where abort.status.code < 500:
            let detail = abort.reason == abort.status.reasonPhrase ? nil : abort.reason
            return HTTPProblem(abort.status, detail: detail, headers: abort.headers)
        default:
            if let unavailable = DatabaseUnavailable.problem(for: error) {
                request.logger.warning("database unavailable", metadata: ["error": "\(DatabaseSetup.describe(error))"])
                return unavailable
            }
            request.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            let status = (error as? any AbortError)?.status ?? .internalServerError
            let detail = showInternalErrors ? String(reflecting: error) : "The server could not complete this request; it has been logged."
            return HTTPProblem(status, detail: detail)
        }
    }
}
