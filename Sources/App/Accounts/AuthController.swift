import Vapor

/// `/auth/…`: sign up, sign in, refresh, sign out, and who am I.
struct AuthController: RouteCollection {
    let accounts: AccountService
    let sessions: SessionIssuer
    let requireUser: AccessTokenMiddleware

    func boot(routes: any RoutesBuilder) throws {
        let auth = routes.grouped("auth")
        auth.post("register", use: register)
        auth.post("login", use: login)
        auth.post("refresh", use: refresh)
        auth.post("logout", use: logout)
        auth.grouped(requireUser).get("me", use: me)
    }

    func register(req: Request) async throws -> Response {
        let registration = try req.decodeJSON(RegisterRequest.self).validated()
        let (user, tokens) = try await accounts.register(registration, on: req.db)
        return try await SessionResponse(user: user, tokens: tokens).encodeResponse(status: .created, for: req)
    }

    func login(req: Request) async throws -> SessionResponse {
        let credentials = try req.decodeJSON(LoginRequest.self).validated()
        let (user, tokens) = try await accounts.login(email: credentials.email, password: credentials.password, on: req.db)
        return try SessionResponse(user: user, tokens: tokens)
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
