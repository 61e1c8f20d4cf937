import Vapor

/// Lets a request through only with a valid access token of an active user, who is then
/// available as ``Request/currentUser``. The token comes in the `Authorization` header only, never
/// in the URL (where it would end up in logs, proxies and browser history).
struct AccessTokenMiddleware: AsyncMiddleware {
    let signer: TokenSigner
    let users: SignedInUsers

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let claims: TokenClaims
        if let verified = request.verifiedAccessClaims {
            claims = verified
        } else {
            guard let token = request.headers.bearerAuthorization?.token else { throw AccountsError.missingToken }
            claims = try await signer.verify(token, as: .access)
        }
        guard let id = UUID(hyphenated: claims.userID), let user = try await users.user(id, on: request.db), user.isActive else {
            throw AccountsError.invalidToken("The account behind this token no longer exists or is inactive.")
        }
        if let revokedAt = user.sessionsRevokedAt, claims.iat.value < revokedAt {
            throw AccountsError.invalidToken("This session has been signed out.")
        }
        request.auth.login(user)
        request.storage[AccessClaimsKey.self] = claims
        request.logger[metadataKey: "user"] = .string(claims.userID)
        return try await next.respond(to: request)
    }
}

private struct AccessClaimsKey: StorageKey {
    typealias Value = TokenClaims
}

private struct VerifiedHeaderClaimsKey: StorageKey {
    typealias Value = TokenClaims
}

extension Request {
    /// The user signed in by ``AccessTokenMiddleware``.
    var currentUser: User {
        get throws { try auth.require(User.self) }
    }

    /// The claims of the `Authorization` header's access token, once verified (by the rate limiter),
    /// so that it is verified once per request.
    var verifiedAccessClaims: TokenClaims? {
        get { storage[VerifiedHeaderClaimsKey.self] }
        set { storage[VerifiedHeaderClaimsKey.self] = newValue }
    }

    /// When the access token of this request expires.
    var accessTokenExpiry: Date? {
        storage[AccessClaimsKey.self]?.exp.value
    }

    /// When the access token of this request was issued.
    var accessTokenIssuedAt: Date? {
        storage[AccessClaimsKey.self]?.iat.value
    }
}
