import Vapor

/// `/auth/…`: sign up, sign in, refresh, sign out, and who am I.
struct AuthController: RouteCollection {
    let accounts: AccountService
    let sessions: SessionIssuer
    let requireUser: AccessTokenMiddleware
    /// The tighter per-client limit on signing up and in (against guessing).
    let authLimit: RouteRateLimitMiddleware
    /// Failed logins per account.
    let loginThrottle: LoginThrottle
    /// `SIGNUP=open`.
    let signupOpen: Bool
    /// `PASSWORD_LOGIN`.
    let passwordLogin: Bool

    func boot(routes: any RoutesBuilder) throws {
        let auth = routes.grouped("auth")
        let limited = auth.grouped(authLimit)
        limited.post("register", use: register)
        limited.post("login", use: login)
        limited.post("refresh", use: refresh)
        limited.post("logout", use: logout)
        auth.grouped(requireUser).get("me", use: me)
    }

    func register(req: Request) async throws -> Response {
        guard passwordLogin else { throw AccountsError.passwordLoginDisabled }
        guard signupOpen else { throw AccountsError.signupClosed }
        let registration = try req.decodeJSON(RegisterRequest.self).validated()
        let (user, tokens) = try await accounts.register(registration, on: req.db)
        return try await SessionResponse(user: user, tokens: tokens).encodeResponse(status: .created, for: req)
    }

    func login(req: Request) async throws -> Response {
        guard passwordLogin else { throw AccountsError.passwordLoginDisabled }
        let credentials = try req.decodeJSON(LoginRequest.self).validated()
        // Counted before the password is checked (429 once the client's budget is spent), given back when it is right.
        let attempt = try await loginThrottle.begin(email: credentials.email, request: req)
        let (user, tokens) = try await accounts.login(email: credentials.email, password: credentials.password, on: req.db)
        let response = try await SessionResponse(user: user, tokens: tokens).encodeResponse(status: .ok, for: req)
        try await loginThrottle.succeeded(attempt, response: response, on: req.db)
        return response
    }

    func refresh(req: Request) async throws -> TokenPairResponse {
        let token = try req.decodeJSON(RefreshRequest.self).validated()
        let (_, tokens) = try await sessions.rotate(token, on: req.db)
        return TokenPairResponse(tokens)
    }

    func logout(req: Request) async throws -> HTTPStatus {
        let token = try req.decodeJSON(RefreshRequest.self).validated()
        try await sessions.end(token, on: req.db)
        return .noContent
    }

    func me(req: Request) async throws -> UserResponse {
        try UserResponse(try req.currentUser)
    }
}
