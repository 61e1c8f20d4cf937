import Vapor

/// What went wrong in the admin; shown as an HTML page with the status.
enum AdminError: Error {
    case notFound
    case csrfFailed
    case forbidden(String)

    var status: HTTPResponseStatus {
        switch self {
        case .notFound: .notFound
        case .csrfFailed, .forbidden: .forbidden
        }
    }

    var message: String {
        switch self {
        case .notFound: "There is nothing here. It may have been deleted."
        case .csrfFailed: "The form was stale or did not come from this site (CSRF check failed). Nothing was changed; reload the page and try again."
        case .forbidden(let reason): reason
        }
    }
}

/// Wraps every admin page: the headers a page of private data needs (no framing, no caching, a
/// CSP that allows only this site's stylesheet and forms), and errors shown as HTML pages rather
/// than the API's problem+json.
struct AdminPageMiddleware: AsyncMiddleware {
    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    let showInternalErrors: Bool

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let response: Response
        do {
            response = try await next.respond(to: request)
        } catch {
            response = try await errorPage(for: error, request)
        }
        response.headers.replaceOrAdd(name: "X-Frame-Options", value: "DENY")
        response.headers.replaceOrAdd(name: "Content-Security-Policy", value: Self.contentSecurityPolicy)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    private func errorPage(for error: any Error, _ request: Request) async throws -> Response {
        let status: HTTPResponseStatus
        let message: String
        var headers = HTTPHeaders()
        switch error {
        case let error as AdminError:
            (status, message) = (error.status, error.message)
        case let error as any HTTPProblemConvertible:
            let problem = error.problem
            (status, message, headers) = (problem.status, problem.detail ?? problem.title, problem.headers)
        case let error as any AbortError:
            (status, message) = (error.status, error.reason)
        default:
            request.logger.error("admin page failed", metadata: ["error": "\(String(reflecting: error))"])
            status = .internalServerError
            message = showInternalErrors ? String(reflecting: error) : "Something went wrong on the server. It has been logged."
        }
        let context = AdminErrorPage(title: status.reasonPhrase, status: Int(status.code), message: message,
                                     signedIn: request.adminUser != nil)
        let response = try await request.view.render("admin/error", context).encodeResponse(status: status, for: request)
        for (name, value) in headers { response.headers.replaceOrAdd(name: name, value: value) }
        return response
    }
}

struct AdminErrorPage: Encodable {
    let title: String
    let status: Int
    let message: String
    let signedIn: Bool
}

/// Lets through only a signed-in, active staff member (others are sent to the sign-in page), and
/// checks the CSRF token of every request that may change something.
struct AdminAuthMiddleware: AsyncMiddleware {
    let sessions: AdminSessions

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard let (session, user) = try await sessions.current(request) else {
            var target = "/admin/login/"
            if request.method == .GET, let path = Self.returnPath(request.path + (request.url.query.map { "?\($0)" } ?? "")) {
                var components = URLComponents()
                components.queryItems = [URLQueryItem(name: "next", value: path)]
                target += "?" + (components.percentEncodedQuery ?? "")
            }
            return request.redirect(to: target, redirectType: .normal)
        }
        if request.method != .GET, request.method != .HEAD {
            let presented = try? request.content.get(String.self, at: "csrf_token")
            guard let presented, Secrets.constantTimeEqual(presented, session.csrfToken) else {
                request.logger.warning("admin CSRF check failed", metadata: ["user": "\(user.email)", "path": "\(request.path)"])
                throw AdminError.csrfFailed
            }
        }
        request.adminSession = session
        request.adminUser = user
        return try await next.respond(to: request)
    }

    /// `path` when it is a page of the admin (so `next=` cannot send anyone elsewhere), as it will
    /// be written into `Location`.
    static func returnPath(_ path: String?) -> String? {
        guard let path, let target = RedirectTarget(path, allowedOrigins: []),
              target.url.hasPrefix("/admin/"), !target.url.hasPrefix("/admin/login") else { return nil }
        return target.url
    }
}

extension Request {
    private struct AdminSessionKey: StorageKey { typealias Value = AdminSession }
    private struct AdminUserKey: StorageKey { typealias Value = User }

    /// The admin session of a request that passed ``AdminAuthMiddleware``.
    var adminSession: AdminSession? {
        get { storage[AdminSessionKey.self] }
        set { storage[AdminSessionKey.self] = newValue }
    }

    /// The staff member signed in to the admin.
    var adminUser: User? {
        get { storage[AdminUserKey.self] }
        set { storage[AdminUserKey.self] = newValue }
    }

    /// The signed-in staff member; only called behind ``AdminAuthMiddleware``.
    func requireAdmin() throws -> (session: AdminSession, user: User) {
        guard let session = adminSession, let user = adminUser else { throw AdminError.forbidden("Sign in first.") }
        return (session, user)
    }
}
