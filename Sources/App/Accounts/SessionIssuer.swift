import Fluent
import SQLKit
import Vapor

/// A fresh access token and the refresh token that replaces the one just spent.
public struct TokenPair: Sendable {
    public var access: String
    public var refresh: String
    /// Seconds until the access token expires.
    public var expiresIn: Int
}

/// Starts sessions, rotates their refresh tokens and ends them, keeping every refresh token
/// on record so that a spent one presented again revokes its whole family.
public struct SessionIssuer: Sendable {
    let signer: TokenSigner
    let clock: any WallClock

    /// Signs in `user` with a new token family.
    public func start(for user: User, on db: any Database) async throws -> TokenPair {
        try await issue(for: user, family: UUID(), on: db)
    }

    /// Spends `refreshToken` and issues the next pair in its family.
    public func rotate(_ refreshToken: String, on db: any Database) async throws -> (User, TokenPair) {
        let claims = try await signer.verify(refreshToken, as: .refresh)
        guard let jti = UUID(uuidString: claims.jti), let record = try await RefreshToken.find(jti, on: db) else {
            throw AccountsError.invalidToken("This refresh token is not known.")
        }
        guard record.revokedAt == nil else {
            throw AccountsError.invalidToken("This session has been signed out.")
        }
        guard try await claim(jti, on: db) else {
            try await revokeFamily(record.familyID, on: db)
            db.logger.warning("refresh token reuse detected; family revoked", metadata: ["family": "\(record.familyID)"])
            throw AccountsError.refreshTokenReused
        }
        guard let user = try await User.find(record.$user.id, on: db), user.isActive else {
            try await revokeFamily(record.familyID, on: db)
            throw AccountsError.invalidToken("The account is no longer active.")
        }
        return (user, try await issue(for: user, family: record.familyID, on: db))
    }

    /// Ends the session `refreshToken` belongs to, whether or not the token is still fresh.
    public func end(_ refreshToken: String, on db: any Database) async throws {
        let claims = try await signer.verify(refreshToken, as: .refresh, allowExpired: true)
        guard let jti = UUID(uuidString: claims.jti), let record = try await RefreshToken.find(jti, on: db) else {
            throw AccountsError.invalidToken("This refresh token is not known.")
        }
        try await revokeFamily(record.familyID, on: db)
    }

    /// Revokes every refresh token of the user (signs them out everywhere once their access tokens expire).
    func revokeAll(of userID: UUID, on db: any Database) async throws {
        try await RefreshToken.query(on: db)
            .filter(\.$user.$id == userID)
            .filter(\.$revokedAt == nil)
            .set(\.$revokedAt, to: clock.now())
            .update()
    }

    /// Revokes every token of `family` that is not revoked yet.
    func revokeFamily(_ family: UUID, on db: any Database) async throws {
        try await RefreshToken.query(on: db)
            .filter(\.$familyID == family)
            .filter(\.$revokedAt == nil)
            .set(\.$revokedAt, to: clock.now())
            .update()
    }

    /// Marks the token spent if nobody has spent it yet; false when it was already spent.
    /// A single conditional UPDATE, so two concurrent refreshes with one token cannot both win.
    private func claim(_ jti: UUID, on db: any Database) async throws -> Bool {
        guard let sql = db as? any SQLDatabase else { return false }
        let rows = try await sql.update(RefreshToken.schema)
            .set("used_at", to: SQLBind(clock.now()))
            .where("id", .equal, SQLBind(jti))
            .where("used_at", .is, SQLLiteral.null)
            .returning("id")
            .all()
        return !rows.isEmpty
    }

    private func issue(for user: User, family: UUID, on db: any Database) async throws -> TokenPair {
        let refreshID = UUID()
        let refresh = try await signer.sign(.refresh, for: user, jti: refreshID)
        try await RefreshToken(id: refreshID, userID: try user.requireID(), familyID: family, expiresAt: refresh.expiresAt)
            .create(on: db)
        let access = try await signer.sign(.access, for: user, jti: UUID())
        return TokenPair(access: access.token, refresh: refresh.token, expiresIn: Int(signer.accessLifetime))
    }
}
