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
    /// Told when a user's sessions are revoked, so that none of their tokens is accepted from
    /// memory afterwards.
    let users: SignedInUsers
    /// How the account's session lock is taken.
    let databaseKind: DatabaseKind

    /// Signs in `user` with a new token family (a new account, or one a sign-in just read).
    public func start(for user: User, on db: any Database) async throws -> TokenPair {
        try await issue(for: user, family: UUID(), signedInAt: clock.now(), on: db)
    }

    /// Signs in `user`, whose password was checked while its revocation cut was
    /// `user.sessionsRevokedAt`: under the account's session lock, and only if the cut has not
    /// moved since and the account is still active. A sign-out everywhere that ran while the
    /// password was being checked (a takeover by Google, an admin's password reset, a
    /// deactivation) otherwise misses the session issued after it: ``AccountsError/invalidCredentials``.
    public func startAfterPasswordCheck(for user: User, on db: any Database) async throws -> TokenPair {
        try await db.transaction { tx in
            try await lockUnchanged(user, on: tx)
            return try await issue(for: user, family: UUID(), signedInAt: clock.now(), on: tx)
        }
    }

    /// Takes the account's session lock (``lockSessions(of:on:)``, inside the caller's transaction)
    /// and checks that `user`, as the caller read it, is still active with the same revocation cut.
    func lockUnchanged(_ user: User, on db: any Database) async throws {
        let id = try user.requireID()
        try await lockSessions(of: id, on: db)
        guard let now = try await User.findForRequest(id, on: db), now.isActive,
              Self.sameCut(now.sessionsRevokedAt, user.sessionsRevokedAt) else {
            throw AccountsError.invalidCredentials
        }
    }

    /// Cuts are whole seconds; compared as such, whatever precision a driver reads them back with.
    private static func sameCut(_ a: Date?, _ b: Date?) -> Bool {
        a.map { $0.timeIntervalSince1970.rounded() } == b.map { $0.timeIntervalSince1970.rounded() }
    }

    private static func lockKey(_ userID: UUID) -> String { "sessions:" + userID.lowercased }

    /// Spends `refreshToken` and issues the next pair in its family.
    ///
    /// One transaction that first takes the user's session lock (see ``lockSessions(of:on:)``), so
    /// that a refresh and a sign-out (or a password change) of the same user never interleave: the
    /// new token is either issued before the family is revoked, and revoked with it, or not at all.
    public func rotate(_ refreshToken: String, on db: any Database) async throws -> (User, TokenPair) {
        let claims = try await signer.verify(refreshToken, as: .refresh)
        guard let jti = UUID(hyphenated: claims.jti), let userID = UUID(hyphenated: claims.userID) else {
            throw AccountsError.invalidToken("This refresh token is not known.")
        }
        enum Rotation {
            case rotated(User, TokenPair)
            case refused(AccountsError)
        }
        // A refusal that revokes the family must commit that revocation, so it is returned, not thrown.
        let rotation = try await db.transaction { tx -> Rotation in
            try await lockSessions(of: userID, on: tx)
            let claimed = try await claim(jti, on: tx)
            guard let record = try await RefreshToken.find(jti, on: tx) else {
                return .refused(.invalidToken("This refresh token is not known."))
            }
            guard claimed else {
                if record.revokedAt != nil || record.usedAt == nil {
                    return .refused(.invalidToken("This session has been signed out."))
                }
                try await revokeFamily(record.familyID, on: tx)
                tx.logger.warning("refresh token reuse detected; family revoked", metadata: ["family": "\(record.familyID)"])
                return .refused(.refreshTokenReused)
            }
            guard let user = try await User.find(record.$user.id, on: tx), user.isActive else {
                try await revokeFamily(record.familyID, on: tx)
                return .refused(.invalidToken("The account is no longer active."))
            }
            // The session's sign-in stays when it refreshes (a session from before it was recorded: long ago).
            let signedInAt = record.signedInAt ?? .distantPast
            return .rotated(user, try await issue(for: user, family: record.familyID, signedInAt: signedInAt, on: tx))
        }
        switch rotation {
        case .rotated(let user, let tokens): return (user, tokens)
        case .refused(let error): throw error
        }
    }

    /// Ends the session `refreshToken` belongs to, whether or not the token is still fresh.
    public func end(_ refreshToken: String, on db: any Database) async throws {
        let claims = try await signer.verify(refreshToken, as: .refresh, allowExpired: true)
        guard let jti = UUID(hyphenated: claims.jti), let userID = UUID(hyphenated: claims.userID) else {
            throw AccountsError.invalidToken("This refresh token is not known.")
        }
        let known = try await db.transaction { tx in
            try await lockSessions(of: userID, on: tx)
            guard let record = try await RefreshToken.find(jti, on: tx) else { return false }
            try await revokeFamily(record.familyID, on: tx)
            return true
        }
        guard known else { throw AccountsError.invalidToken("This refresh token is not known.") }
    }

    /// Signs the user out everywhere: revokes every refresh token, and refuses every access token
    /// issued until now. JWT times are whole seconds, so the cut is the next whole second: tokens
    /// issued before it are refused, and tokens issued after the revocation carry it as their `iat`
    /// (see ``TokenSigner/sign(_:for:jti:)``). Each cut is later than the one before, so that a
    /// second revocation within the same second still refuses what was issued after the first (a
    /// password change, then "sign out everywhere"). Returns the cut. The caller announces the
    /// change once its transaction has committed (``AccountService/changing(on:_:)``).
    @discardableResult
    func revokeAll(of userID: UUID, on db: any Database) async throws -> Date {
        let now = clock.now()
        let next = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down) + 1)
        return try await db.transaction { tx in
            try await lockSessions(of: userID, on: tx)
            let previous = try await User.findForRequest(userID, on: tx)?.sessionsRevokedAt
            let cut = previous.map { max(next, Date(timeIntervalSince1970: $0.timeIntervalSince1970.rounded() + 1)) } ?? next
            try await RefreshToken.query(on: tx)
                .filter(\.$user.$id == userID)
                .filter(\.$revokedAt == nil)
                .set(\.$revokedAt, to: now)
                .update()
            try await User.query(on: tx)
                .filter(\.$id == userID)
                .set(\.$sessionsRevokedAt, to: cut)
                .update()
            return cut
        }
    }

    /// Revokes every token of `family` that is not revoked yet.
    private func revokeFamily(_ family: UUID, on db: any Database) async throws {
        try await RefreshToken.query(on: db)
            .filter(\.$familyID == family)
            .filter(\.$revokedAt == nil)
            .set(\.$revokedAt, to: clock.now())
            .update()
    }

    /// Serialises the transactions that issue or revoke `userID`'s refresh tokens (see
    /// ``Database/lockForWriting(_:on:)``), so that a revocation never misses a token a concurrent
    /// refresh inserts.
    private func lockSessions(of userID: UUID, on db: any Database) async throws {
        try await db.lockForWriting(Self.lockKey(userID), on: databaseKind)
    }

    /// Marks the token spent if nobody has spent or revoked it yet; false otherwise.
    /// A single conditional UPDATE, so two concurrent refreshes with one token cannot both win.
    private func claim(_ jti: UUID, on db: any Database) async throws -> Bool {
        let rows = try await db.sql().update(RefreshToken.schema)
            .set("used_at", to: SQLBind(clock.now()))
            .where("id", .equal, SQLBind(jti))
            .where("used_at", .is, SQLLiteral.null)
            .where("revoked_at", .is, SQLLiteral.null)
            .returning("id")
            .all()
        return !rows.isEmpty
    }

    /// When the session of the access token `jti` signed in; nil when it is not known (an
    /// older token, or a session that ended and was cleaned up).
    func signedInAt(ofAccessToken jti: String, on db: any Database) async throws -> Date? {
        try await RefreshToken.query(on: db).filter(\.$accessJTI == jti.lowercased()).first()?.signedInAt
    }

    private func issue(for user: User, family: UUID, signedInAt: Date, on db: any Database) async throws -> TokenPair {
        let refreshID = UUID()
        let accessID = UUID()
        let refresh = try await signer.sign(.refresh, for: user, jti: refreshID)
        try await RefreshToken(id: refreshID, userID: try user.requireID(), familyID: family, expiresAt: refresh.expiresAt,
                               accessJTI: accessID.lowercased, signedInAt: signedInAt)
            .create(on: db)
        let access = try await signer.sign(.access, for: user, jti: accessID)
        return TokenPair(access: access.token, refresh: refresh.token, expiresIn: Int(signer.accessLifetime.seconds))
    }
}
