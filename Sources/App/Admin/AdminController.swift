import Fluent
import Vapor

/// The admin's front door: sign-in, sign-out and the dashboard.
struct AdminController: RouteCollection {
    let accounts: AccountService
    let sessions: AdminSessions
    /// Per client: the API's sign-in limit, counted apart.
    let signInLimit: RouteRateLimitMiddleware
    /// Failed sign-ins per account: the admin's own, apart from the API's.
    let loginThrottle: LoginThrottle
    let clock: any WallClock
    let runner: ReplyRunner

    func boot(routes: any RoutesBuilder) throws {
        routes.get("login", use: loginPage)
        routes.grouped(signInLimit).post("login", use: login)
        let signedIn = routes.grouped(AdminAuthMiddleware(sessions: sessions))
        signedIn.get(use: dashboard)
        signedIn.post("logout", use: logout)
    }

    struct LoginPage: Encodable {
        let title = "Sign in"
        let csrf: String
        let email: String
        let next: String
        let error: String?
        let notice: String?
    }

    func loginPage(req: Request) async throws -> Response {
        if try await sessions.current(req) != nil {
            return req.redirect(to: AdminAuthMiddleware.returnPath(req.query[String.self, at: "next"]) ?? "/admin/")
        }
        return try await renderLogin(req, email: "", error: nil, status: .ok)
    }

    func login(req: Request) async throws -> Response {
        let presented = req.formField("csrf_token")
        guard let cookie = req.cookies[AdminSessions.loginCookieName]?.string, !presented.isEmpty,
              Secrets.constantTimeEqual(presented, cookie) else { throw AdminError.csrfFailed }
        let email = User.normalize(email: req.formField("email"))
        let password = req.formText("password")
        let refused = "Please enter the email and password of an active staff account. The password is case-sensitive."
        // No account has a malformed email or an over-long password: refused before any lookup or count.
        guard EmailAddress.isValid(email), !password.isEmpty, password.utf8.count <= PasswordService.maxBytes else {
            return try await renderLogin(req, email: "", error: refused, status: .unauthorized)
        }
        let attempt = try await loginThrottle.begin(email: email, request: req)

        let user: User
        do {
            user = try await accounts.authenticate(email: email, password: password, on: req.db)
        } catch AccountsError.invalidCredentials {
            req.logger.notice("admin sign-in refused", metadata: ["email": "\(email)"])
            return try await renderLogin(req, email: email, error: refused, status: .unauthorized)
        }
        guard user.isStaff else {
            req.logger.notice("admin sign-in refused: not staff", metadata: ["email": "\(user.email)"])
            return try await renderLogin(req, email: email, error: refused, status: .unauthorized)
        }
        let token: String
        do {
            token = try await sessions.start(for: user, on: req.db)
        } catch AccountsError.invalidCredentials {
            // Signed out everywhere (a password reset, a deactivation) while the password was checked.
            return try await renderLogin(req, email: email, error: refused, status: .unauthorized)
        }
        req.logger.notice("admin signed in", metadata: ["admin": "\(user.email)"])
        let response = req.redirect(to: AdminAuthMiddleware.returnPath(req.formField("next")) ?? "/admin/")
        response.cookies[AdminSessions.cookieName] = sessions.sessionCookie(token)
        response.cookies[AdminSessions.loginCookieName] = sessions.expiredCookie()
        try await loginThrottle.succeeded(attempt, response: response, on: req.db)
        return response
    }

    func logout(req: Request) async throws -> Response {
        let (session, user) = try req.requireAdmin()
        try await sessions.end(session, on: req.db)
        req.logger.notice("admin signed out", metadata: ["admin": "\(user.email)"])
        let response = req.redirect(to: "/admin/login/?notice=signed-out")
        response.cookies[AdminSessions.cookieName] = sessions.expiredCookie()
        return response
    }

    struct Dashboard: Encodable {
        let users: Int
        let staff: Int
        let chats: Int
        let messages: Int
        let streaming: Int
        let failedToday: Int
        let streamingHere: Int
    }

    func dashboard(req: Request) async throws -> Response {
        let dayAgo = clock.now().addingTimeInterval(-86_400)
        let content = Dashboard(
            users: try await User.query(on: req.db).count(),
            staff: try await User.query(on: req.db).filter(\.$isStaff == true).count(),
            chats: try await Chat.query(on: req.db).count(),
            messages: try await Message.query(on: req.db).count(),
            streaming: try await Message.query(on: req.db).filter(\.$status == .streaming).count(),
            failedToday: try await Message.query(on: req.db).filter(\.$status == .failed).filter(\.$updatedAt >= dayAgo).count(),
            streamingHere: runner.runningCount
        )
        return try await req.adminPage("dashboard", title: "Dashboard", section: "dashboard", content)
    }

    /// The sign-in form, with a fresh CSRF token paired with a cookie (there is no session yet).
    private func renderLogin(_ req: Request, email: String, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let token = Secrets.randomToken()
        let page = LoginPage(
            csrf: token, email: email,
            next: AdminAuthMiddleware.returnPath(req.query[String.self, at: "next"] ?? req.formField("next")) ?? "",
            error: error, notice: req.query[String.self, at: "notice"].flatMap(AdminNotice.text)
        )
        let response = try await req.view.render("admin/login", page).encodeResponse(status: status, for: req)
        response.cookies[AdminSessions.loginCookieName] = sessions.loginCookie(token)
        return response
    }
}
