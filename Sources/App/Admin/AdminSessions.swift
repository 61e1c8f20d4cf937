import Fluent
import Vapor

/// Starts, finds and ends admin sessions, and makes their cookies.
struct AdminSessions: Sendable {
    /// Where a sign-in checks that the account was not signed out meanwhile.
    let sessions: SessionIssuer
    let clock: any WallClock
    let lifetime: Duration
    let secureCookies: Bool

    static let cookieName = "chat_admin_session"
    /// Before sign-in there is no session: the login form's CSRF token is paired with this cookie.
    static let loginCookieName = "chat_admin_login"

    /// Signs `user` in, whose password was just checked; returns the token for the cookie. Refused
    /// (``AccountsError/invalidCredentials``) when the account was signed out everywhere meanwhile.
    func start(for user: User, on db: any Database) async throws -> String {
        let token = Secrets.randomToken()
        try await db.transaction { tx in
            try await sessions.lockUnchanged(user, on: tx)
            try await AdminSession(userID: try user.requireID(), tokenHash: Secrets.hash(token), csrfToken: Secrets.randomToken(),
                                   expiresAt: clock.now().adding(lifetime)).create(on: tx)
        }
        return token
    }

    /// The live session named by the request's cookie, with its user (who must still be active staff).
    func current(_ request: Request) async throws -> (session: AdminSession, user: User)? {
        guard let token = request.cookies[Self.cookieName]?.string, !token.isEmpty else { return nil }
        guard let session = try await AdminSession.query(on: request.db)
            .filter(\.$tokenHash == Secrets.hash(token)).with(\.$user).first() else { return nil }
        guard session.expiresAt > clock.now() else {
            try await session.delete(on: request.db)
            return nil
        }
        let user = session.user
        guard user.isActive, user.isStaff else { return nil }
        return (session, user)
    }

    func end(_ session: AdminSession, on db: any Database) async throws {
        try await session.delete(on: db)
    }

    /// Sessions past their expiry (for `cleanup`).
    static func expired(before date: Date, on db: any Database) -> QueryBuilder<AdminSession> {
        AdminSession.query(on: db).filter(\.$expiresAt < date)
    }

    func sessionCookie(_ token: String) -> HTTPCookies.Value {
        HTTPCookies.Value(string: token, maxAge: Int(lifetime.seconds), path: "/admin", isSecure: secureCookies, isHTTPOnly: true, sameSite: .lax)
    }

    func loginCookie(_ token: String) -> HTTPCookies.Value {
        HTTPCookies.Value(string: token, maxAge: 3600, path: "/admin", isSecure: secureCookies, isHTTPOnly: true, sameSite: .strict)
    }

    func expiredCookie() -> HTTPCookies.Value {
        HTTPCookies.Value(string: "", expires: Date(timeIntervalSince1970: 0), maxAge: 0, path: "/admin",
                          isSecure: secureCookies, isHTTPOnly: true, sameSite: .lax)
    }
}
