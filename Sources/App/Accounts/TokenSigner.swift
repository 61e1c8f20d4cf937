import JWT
import NIOConcurrencyHelpers
import Vapor

/// Access or refresh: a token of one kind is never accepted as the other.
public enum TokenKind: String, Codable, Sendable {
    case access
    case refresh
}

/// The claims of both token kinds, exactly those of the contract.
public struct TokenClaims: JWTPayload, Equatable {
    public var userID: String
    public var email: String
    public var role: String
    public var type: TokenKind
    public var jti: String
    public var iat: IssuedAtClaim
    public var exp: ExpirationClaim

    enum CodingKeys: String, CodingKey {
        case userID = "user_id", email, role, type, jti, iat, exp
    }

    /// Expiry is checked by ``TokenSigner`` against its injected clock.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Signs and checks HS256 JWTs with the server's `SECRET_KEY`.
public struct TokenSigner: Sendable {
    let keys: JWTKeyCollection
    let clock: any WallClock
    public let accessLifetime: Duration
    public let refreshLifetime: Duration
    /// Access tokens whose signature was checked, by their exact text: a client sends the same
    /// token with every request for its lifetime, and the same bytes verify the same way, so the
    /// HMAC and the claims' JSON are worked out once per token. Expiry (and the kind) is still
    /// checked on every use; revocation is the account's (``SignedInUsers``).
    private let verified = VerifiedTokens()

    public init(secretKey: String, clock: any WallClock, accessLifetime: Duration, refreshLifetime: Duration) async {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secretKey), digestAlgorithm: .sha256)
        self.keys = keys
        self.clock = clock
        self.accessLifetime = accessLifetime
        self.refreshLifetime = refreshLifetime
    }

    /// Signs a token of `kind` for `user` with the id `jti`; returns it and when it expires.
    /// JWT times are whole seconds; a token issued within a second of the user being signed out
    /// everywhere is dated at the cut (``User/sessionsRevokedAt``), so that it is not refused with
    /// the tokens issued before the cut.
    func sign(_ kind: TokenKind, for user: User, jti: UUID) async throws -> (token: String, expiresAt: Date) {
        let now = max(Date(timeIntervalSince1970: clock.now().timeIntervalSince1970.rounded(.down)),
                      user.sessionsRevokedAt ?? .distantPast)
        let expiresAt = now.adding(kind == .access ? accessLifetime : refreshLifetime)
        let claims = TokenClaims(
            userID: try user.requireID().lowercased,
            email: user.email,
            role: user.role.rawValue,
            type: kind,
            jti: jti.lowercased,
            iat: IssuedAtClaim(value: now),
            exp: ExpirationClaim(value: expiresAt)
        )
        return (try await keys.sign(claims), expiresAt)
    }

    /// The claims of a genuine, unexpired token of `kind`; anything else is ``AccountsError/invalidToken(_:)``.
    public func verify(_ token: String, as kind: TokenKind, allowExpired: Bool = false) async throws(AccountsError) -> TokenClaims {
        let claims: TokenClaims
        if let known = verified.claims(of: token) {
            claims = known
        } else {
            do {
                claims = try await keys.verify(token, as: TokenClaims.self)
            } catch {
                throw .invalidToken("The token is malformed or its signature does not match.")
            }
            if claims.type == .access { verified.keep(token, claims, now: clock.now()) }
        }
        guard claims.type == kind else {
            throw .invalidToken("A \(claims.type.rawValue) token was sent where a \(kind.rawValue) token is required.")
        }
        guard allowExpired || claims.exp.value > clock.now() else {
            throw .invalidToken("The token has expired.")
        }
        return claims
    }
}

/// The access tokens ``TokenSigner`` has verified, until they expire; bounded, and expired ones
/// dropped every ``sweepInterval`` so that memory follows the tokens in use, not every token seen.
final class VerifiedTokens: Sendable {
    private let tokens = NIOLockedValueBox(ExpiringCache<String, TokenClaims>(capacity: capacity, sweepInterval: sweepInterval))
    static let capacity = 20_000
    static let sweepInterval: TimeInterval = 60

    /// The claims of `token` if it was verified (expired or not: expiry is checked on every use).
    func claims(of token: String) -> TokenClaims? {
        tokens.withLockedValue { $0.value(for: token, now: .distantPast) }
    }

    func keep(_ token: String, _ claims: TokenClaims, now: Date) {
        tokens.withLockedValue { $0.set(claims, for: token, expiresAt: claims.exp.value, now: now) }
    }

    /// Tokens kept now (for tests).
    var count: Int { tokens.withLockedValue { $0.count } }
}
