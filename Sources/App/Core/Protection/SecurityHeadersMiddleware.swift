import NIOConcurrencyHelpers
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

/// A request that has not produced its response head in `timeout` is answered 503 at once (event
/// streams produce theirs at once and then run as long as they like). The handler's task is
/// cancelled; work it already handed elsewhere (a database query) finishes in the background,
/// bounded by its own timeouts.
struct RequestTimeoutMiddleware: AsyncMiddleware {
    let timeout: TimeInterval

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let timeout = self.timeout
        return try await withCheckedThrowingContinuation { continuation in
            let outcome = FirstOutcome(continuation)
            // The handler runs in a task of its own so that the answer can go before it ends; the
            // deadline is a timer on the request's event loop (cheaper than a sleeping task).
            let handler = Task {
                do { outcome.resume(with: .success(try await next.respond(to: request))) } catch { outcome.resume(with: .failure(error)) }
            }
            let timer = request.eventLoop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) {
                let problem = HTTPProblem(.serviceUnavailable, title: "Request timed out",
                                          detail: "The server did not finish this request within \(timeout.formatted()) s.", headers: ["Retry-After": "5"])
                if outcome.resume(with: .failure(problem)) {
                    request.logger.warning("request timed out", metadata: ["timeout": "\(timeout)"])
                    handler.cancel()
                }
            }
            outcome.onResume { timer.cancel() }
        }
    }
}

/// Resumes a continuation with whichever outcome comes first.
private final class FirstOutcome: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Response, any Error>?
        var onResume: (@Sendable () -> Void)?
    }

    private let state: NIOLockedValueBox<State>

    init(_ continuation: CheckedContinuation<Response, any Error>) {
        state = NIOLockedValueBox(State(continuation: continuation, onResume: nil))
    }

    /// Resumes unless already resumed; true when this call did.
    @discardableResult
    func resume(with result: Result<Response, any Error>) -> Bool {
        let taken = state.withLockedValue { state -> State in
            let taken = state
            state = State()
            return taken
        }
        guard let continuation = taken.continuation else { return false }
        continuation.resume(with: result)
        taken.onResume?()
        return true
    }

    /// Runs `action` when the continuation is resumed (at once if it already was).
    func onResume(_ action: @escaping @Sendable () -> Void) {
        let alreadyResumed = state.withLockedValue { state -> Bool in
            guard state.continuation != nil else { return true }
            state.onResume = action
            return false
        }
        if alreadyResumed { action() }
    }
}
