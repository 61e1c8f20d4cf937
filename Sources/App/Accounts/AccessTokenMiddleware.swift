import Vapor

/// Lets a request through only with a valid access token of an active user, who is then
/// available as `req.auth.require(User.self)` (or ``Request/currentUser``).
struct AccessTokenMiddleware: AsyncMiddleware {
    let signer: TokenSigner

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard let bearer = request.headers.bearerAuthorization else { throw AccountsError.missingToken }
        let claims = try await signer.verify(bearer.token, as: .access)
        guard let id = UUID(uuidString: claims.userID), let user = try await User.find(id, on: request.db), user.isActive else {
            throw AccountsError.invalidToken("The account behind this token no longer exists or is inactive.")
        }
        request.auth.login(user)
        request.logger[metadataKey: "user"] = .string(claims.userID)
        return try await next.respond(to: request)
    }
}

extension Request {
    /// The user signed in by ``AccessTokenMiddleware``.
    var currentUser: User {
        get throws { try auth.require(User.self) }
    }
}
