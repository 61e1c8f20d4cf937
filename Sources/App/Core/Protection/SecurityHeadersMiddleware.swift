import Vapor

/// Headers every response carries (`nosniff`, no referrer, no framing, an API's strict CSP), and —
/// behind TLS — HTTPS enforcement: plain HTTP requests are redirected (`SECURE_SSL_REDIRECT`) and
/// HTTPS responses carry `Strict-Transport-Security` (`SECURE_HSTS_SECONDS`). Whether a request came
/// over HTTPS is what a trusted proxy says in `X-Forwarded-Proto`. Health checks and metrics are
/// not redirected: load balancers and scrapers call them over plain HTTP, and they carry no user data.
///
/// The redirect goes to the request's host only when it is well formed and allowed (`ALLOWED_HOSTS`
/// outside DEBUG); otherwise the request goes on, to be refused by the allowed-hosts check. The
/// path and query are written from their parsed forms.
struct SecurityHeadersMiddleware: AsyncMiddleware {
    let addresses: ClientAddressResolver
    let sslRedirect: Bool
    let hstsSeconds: Int
    /// Nil in DEBUG, where any well-formed host is answered.
    let allowedHosts: AllowedHosts?

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let secure = addresses.isSecure(request)
        if sslRedirect, !secure, !ServicePaths.isProbe(request.path), let target = httpsTarget(for: request) {
            return Response(status: .movedPermanently, headers: ["Location": target])
        }
        let response = try await next.respond(to: request)
        response.headers.replaceOrAdd(name: "X-Content-Type-Options", value: "nosniff")
        response.headers.replaceOrAdd(name: "X-Frame-Options", value: "DENY")
        if !response.headers.contains(name: "Referrer-Policy") {
            response.headers.replaceOrAdd(name: "Referrer-Policy", value: "no-referrer")
        }
        // A 304 carries no policy of its own: a cache updates the stored response's headers with a
        // 304's, so the API's policy there would replace the page's and blank the web chat on reload.
        if !response.headers.contains(name: "Content-Security-Policy"), response.status != .notModified {
            // The header's text, not its parsed form: this runs on every response.
            let isPage = response.headers.first(name: .contentType)?.lowercased().hasPrefix("text/html") == true
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
    static let pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
        + "font-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

    /// `https://<host><path>?<query>` for a request to an allowed host; nil otherwise. A path or query
    /// that would not survive parsing unchanged is left out.
    private func httpsTarget(for request: Request) -> String? {
        guard let host = AllowedHosts.hostName(of: request), allowedHosts?.isAllowed(host) ?? true else { return nil }
        let origin = "https://" + host
        let path = request.path
        var target = origin + (path.hasPrefix("/") && !path.hasPrefix("//") ? path : "/")
        if let query = request.url.query { target += "?" + query }
        let printable = target.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }
        guard printable, let parsed = URLComponents(string: target), parsed.string == target else { return origin + "/" }
        return target
    }
}

/// Paths that load balancers and scrapers call: never redirected to HTTPS nor rate limited.
enum ServicePaths {
    static let probes: Set<String> = ["/healthz", "/healthz/", "/readyz", "/readyz/", "/metrics", "/metrics/"]

    static func isProbe(_ path: String) -> Bool { probes.contains(path) }
}
