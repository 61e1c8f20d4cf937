import Fluent
import FluentSQL
import Foundation
import SQLKit

/// The one-time codes that stand for finished sign-ins at any provider: what a browser gets in
/// the return URL's fragment instead of the tokens, redeemed once at `POST /auth/exchange/`.
struct SignInCodes: Sendable {
    let sessions: SessionIssuer
    let clock: any WallClock

    /// How long a code may wait to be exchanged.
    static let lifetime: TimeInterval = 60

    /// A single-use code for `signedIn`'s session, valid for ``lifetime``. Only its hash is stored.
    func issue(for signedIn: SignedIn, on db: any Database) async throws -> String {
        let code = Secrets.randomToken()
        try await SignInCode(
            codeHash: Secrets.hash(code), userID: try signedIn.user.requireID(),
            notices: signedIn.notices.map(\.rawValue).joined(separator: ","),
            expiresAt: clock.now().addingTimeInterval(Self.lifetime)
        ).create(on: db)
        return code
    }

    /// Spends `code` and starts the session it stands for; ``SignInError/invalidCode`` when it is
    /// unknown, used or expired, or its account was deactivated meanwhile.
    func redeem(_ code: String, on db: any Database) async throws -> (SignedIn, TokenPair) {
        let now = clock.now()
        try await SignInCode.query(on: db).filter(\.$expiresAt < now).delete()
        let row = try await db.sql().delete(from: SignInCode.schema)
            .where("code_hash", .equal, SQLBind(Secrets.hash(code)))
            .returning(SQLLiteral.all)
            .first()
        guard let row else { throw SignInError.invalidCode }
        let record = try row.decode(fluentModel: SignInCode.self)
        guard record.expiresAt > now, let user = try await User.find(record.$user.id, on: db), user.isActive else {
            throw SignInError.invalidCode
        }
        let notices = record.notices.split(separator: ",").compactMap { AccountNotice(rawValue: String($0)) }
        return (SignedIn(user: user, notices: notices), try await sessions.start(for: user, on: db))
    }
}
