import Vapor

/// Headers every response carries (`nosniff`, no referrer, no framing, an API's strict CSP), and —
/// behind TLS — HTTPS enforcement: plain HTTP requests are redirected (`SECURE_SSL_REDIRECT`) and
/// HTTPS responses carry `Strict-Transport-Security` (`SECURE_HSTS_SECONDS`). Whether a request came
/// over HTTPS is what a trusted proxy says in `X-Forwarded-Proto`. Health checks and metrics are
/// not redirected: load balancers and scrapers call them over plain HTTP, and they carry no user data.
struct SecurityHeadersMiddleware: AsyncMiddleware {
    let addresses: ClientAddressResolver
    let sslRedirect: Bool
    let hstsSeconds: Int

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let secure = addresses.isSecure(request)
        if sslRedirect, !secure, !Self.redirectExempt.contains(request.url.path) {
            let host = request.headers.first(name: .host) ?? "localhost"
            let target = "https://\(host)\(request.url.path)" + (request.url.query.map { "?\($0)" } ?? "")
            return Response(status: .movedPermanently, headers: ["Location": target])
        }
        let response = try await next.respond(to: request)
        response.headers.replaceOrAdd(name: "X-Content-Type-Options", value: "nosniff")
        response.headers.replaceOrAdd(name: "X-Frame-Options", value: "DENY")
        if !response.headers.contains(name: "Referrer-Policy") {
            response.headers.replaceOrAdd(name: "Referrer-Policy", value: "no-referrer")
        }
        if !response.headers.contains(name: "Content-Security-Policy") {
            let isPage = response.headers.contentType?.subType == "html"
            response.headers.replaceOrAdd(name: "Content-Security-Policy", value: isPage ? Self.pagePolicy : Self.apiPolicy)
        }
        if secure, hstsSeconds > 0 {
            response.headers.replaceOrAdd(name: "Strict-Transport-Security", value: "max-age=\(hstsSeconds); includeSubDomains")
        }
        return response
    }

    /// The API's answers are data, never a page: nothing may load from them.
    static let apiPolicy = "default-src 'none'; frame-ancestors 'none'"
    /// The web client's pages: scripts, styles and connections from this origin only, no inline script.
    static let pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "font-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

    static let redirectExempt: Set<String> = ["/healthz", "/healthz/", "/readyz", "/readyz/", "/metrics", "/metrics/"]
}
