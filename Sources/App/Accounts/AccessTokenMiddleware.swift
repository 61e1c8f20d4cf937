import Vapor

/// Lets a request through only with a valid access token of an active user — or, where the routes
/// take them, an API key within its scope — who is then available as ``Request/currentUser``. The
/// credential comes in the `Authorization` header only, never in the URL (where it would end up in
/// logs, proxies and browser history).
struct AccessTokenMiddleware: AsyncMiddleware {
    /// Whether the routes behind it take API keys, and of which scope.
    enum KeyAccess: Sendable {
        /// No key (`/api/keys/`, `/auth/`): a key cannot make keys or change the account.
        case refused
        /// Keys of scope `full` (the `/api/` endpoints).
        case fullScope
        /// Keys of any scope (`/v1/*`).
        case anyScope
    }

    let signer: TokenSigner
    let users: SignedInUsers
    let keys: APIKeys
    var keyAccess = KeyAccess.fullScope

    /// The same, for routes that take `access` keys.
    func taking(_ access: KeyAccess) -> AccessTokenMiddleware {
        var middleware = self
        middleware.keyAccess = access
        return middleware
    }

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if let token = request.headers.bearerToken, APIKeys.isKey(token) {
            return try await respond(to: request, key: token, chainingTo: next)
        }
        let claims: TokenClaims
        if let verified = request.verifiedAccessClaims {
            claims = verified
        } else {
            guard let token = request.headers.bearerToken else { throw AccountsError.missingToken }
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

    /// A request with an API key: known, unexpired, of a scope these routes take, of an active user.
    private func respond(to request: Request, key: String, chainingTo next: any AsyncResponder) async throws -> Response {
        let known: APIKeys.Identity?
        if let verified = request.verifiedAPIKey { known = verified } else { known = try await keys.identity(of: key, on: request.db) }
        guard let identity = known else { throw AccountsError.invalidToken("This API key is not valid: unknown, revoked or expired.") }
        switch keyAccess {
        case .refused:
            throw APIKeyError.notAccepted("API keys are not accepted here: these endpoints need a signed-in session (an access token).")
        case .fullScope where identity.scope != .full:
            throw APIKeyError.notAccepted("This key's scope is inference: it reaches the /v1/ API only.")
        default:
            break
        }
        guard let user = try await users.user(identity.userID, on: request.db), user.isActive else {
            throw AccountsError.invalidToken("The account behind this API key no longer exists or is inactive.")
        }
        request.auth.login(user)
        request.storage[APIKeyIdentityKey.self] = identity
        request.logger[metadataKey: "user"] = .string(identity.userID.lowercased)
        keys.used(identity, on: request.db)
        return try await next.respond(to: request)
    }
}

private struct APIKeyIdentityKey: StorageKey {
    typealias Value = APIKeys.Identity
}

private struct VerifiedAPIKeyKey: StorageKey {
    typealias Value = APIKeys.Identity
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

    /// The API key of the `Authorization` header, once recognised (by the rate limiter), so that it
    /// is looked up once per request.
    var verifiedAPIKey: APIKeys.Identity? {
        get { storage[VerifiedAPIKeyKey.self] }
        set { storage[VerifiedAPIKeyKey.self] = newValue }
    }

    /// Lets go of who the request was let in as — the account, the token's claims, the key — once
    /// nothing will ask again: an event stream's request lives as long as the stream, and these are
    /// most of what it would hold (about 2 KB).
    /// Only what is there is removed: each removal copies the request's storage.
    func forgetIdentity() {
        if auth.has(User.self) { auth.logout(User.self) }
        if storage.contains(AccessClaimsKey.self) { storage[AccessClaimsKey.self] = nil }
        if storage.contains(APIKeyIdentityKey.self) { storage[APIKeyIdentityKey.self] = nil }
        if storage.contains(VerifiedHeaderClaimsKey.self) { storage[VerifiedHeaderClaimsKey.self] = nil }
        if storage.contains(VerifiedAPIKeyKey.self) { storage[VerifiedAPIKeyKey.self] = nil }
    }

    /// The API key this request was let in with; nil for an access token.
    var apiKey: APIKeys.Identity? { storage[APIKeyIdentityKey.self] }

    /// When the access token of this request expires.
    var accessTokenExpiry: Date? {
        storage[AccessClaimsKey.self]?.exp.value
    }

    /// The `jti` of this request's access token.
    var accessTokenID: String? {
        storage[AccessClaimsKey.self]?.jti
    }

    /// When the access token of this request was issued.
    var accessTokenIssuedAt: Date? {
        storage[AccessClaimsKey.self]?.iat.value
    }
}
