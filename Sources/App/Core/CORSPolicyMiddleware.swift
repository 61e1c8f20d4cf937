import Vapor

/// CORS for a frontend on another origin: only the exact origins in `CORS_ALLOWED_ORIGINS`. The API
/// authenticates with bearer tokens, never cookies, so credentials are not allowed: a page on an
/// allowed origin still cannot make a browser send this server's cookies (the admin's). A preflight
/// from any other origin is refused with 403.
struct CORSPolicyMiddleware: AsyncMiddleware {
    let allowedOrigins: Set<String>

    static let allowedMethods = "GET, POST, PATCH, DELETE, OPTIONS"
    static let allowedHeaders = "Authorization, Content-Type, Last-Event-ID, X-Request-ID"
    static let exposedHeaders = "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, WWW-Authenticate, X-Request-ID"
    static let preflightMaxAge = "600"

    init(allowedOrigins: [String]) {
        self.allowedOrigins = Set(allowedOrigins.map { $0.lowercased() })
    }

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard let origin = request.headers.first(name: .origin) else {
            return try await next.respond(to: request)
        }
        let allowed = allowedOrigins.contains(origin.lowercased())

        if request.method == .OPTIONS, request.headers.contains(name: .accessControlRequestMethod) {
            guard allowed else {
                let response = HTTPProblem(.forbidden, title: "Origin not allowed",
                                           detail: "\(origin) is not in CORS_ALLOWED_ORIGINS.").response()
                response.headers.add(name: .vary, value: "Origin")
                return response
            }
            let response = Response(status: .noContent)
            response.headers.replaceOrAdd(name: .accessControlAllowMethods, value: Self.allowedMethods)
            response.headers.replaceOrAdd(name: .accessControlAllowHeaders, value: Self.allowedHeaders)
            response.headers.replaceOrAdd(name: .accessControlMaxAge, value: Self.preflightMaxAge)
            addAllowHeaders(to: response, origin: origin)
            return response
        }

        let response = try await next.respond(to: request)
        if allowed {
            addAllowHeaders(to: response, origin: origin)
            response.headers.replaceOrAdd(name: .accessControlExpose, value: Self.exposedHeaders)
        } else {
            response.headers.add(name: .vary, value: "Origin")
        }
        return response
    }

    private func addAllowHeaders(to response: Response, origin: String) {
        response.headers.replaceOrAdd(name: .accessControlAllowOrigin, value: origin)
        response.headers.add(name: .vary, value: "Origin")
    }
}
