import Crypto
import Fluent
import FluentSQL
import Foundation
import SQLKit
import Vapor

/// Signing in with Google (OpenID Connect, authorization code flow with PKCE): begins by sending
/// the browser to Google with a one-time state and nonce; finishes by exchanging the code, checking
/// the ID token, and signing in the user of that Google account — linking it to an account with the
/// same verified email, or creating one.
struct GoogleSignIn: Sendable {
    let settings: GoogleSettings
    let openID: GoogleOpenIDClient
    let keys: GoogleKeySet
    let sessions: SessionIssuer
    let clock: any WallClock
    /// Origins a sign-in may return to (the frontend's); paths on this server are always allowed.
    let returnOrigins: Set<String>

    /// How long a begun sign-in may take.
    static let attemptLifetime: TimeInterval = 600
    /// Tolerated difference between Google's clock and ours.
    static let clockSkew: TimeInterval = 60

    /// Records a new attempt and answers where to send the browser, and the secret for its cookie.
    func begin(returnTo: String?, on db: any Database) async throws -> (authorizationURL: String, browserSecret: String) {
        if let returnTo, !isAllowedReturn(returnTo) { throw GoogleSignInError.returnNotAllowed(returnTo) }
        let now = clock.now()
        try await GoogleLoginAttempt.query(on: db).filter(\.$expiresAt < now).delete()

        let state = Secrets.randomToken()
        let nonce = Secrets.randomToken()
        let verifier = Secrets.randomToken() + Secrets.randomToken()
        let browserSecret = Secrets.randomToken()
        try await GoogleLoginAttempt(
            state: state, browserHash: Secrets.hash(browserSecret), nonce: nonce, codeVerifier: verifier,
            returnTo: returnTo, expiresAt: now.addingTimeInterval(Self.attemptLifetime)
        ).create(on: db)

        var url = URLComponents(string: settings.authorizationEndpoint) ?? URLComponents()
        url.queryItems = (url.queryItems ?? []) + [
            URLQueryItem(name: "client_id", value: settings.clientID),
            URLQueryItem(name: "redirect_uri", value: settings.redirectURI),
            URLQueryItem(name: "response_type", value: "code"),
            URLQueryItem(name: "scope", value: "openid email profile"),
            URLQueryItem(name: "state", value: state),
            URLQueryItem(name: "nonce", value: nonce),
            URLQueryItem(name: "code_challenge", value: Secrets.base64URL(Data(SHA256.hash(data: Data(verifier.utf8))))),
            URLQueryItem(name: "code_challenge_method", value: "S256"),
            URLQueryItem(name: "prompt", value: "select_account"),
        ]
        return (url.string ?? settings.authorizationEndpoint, browserSecret)
    }

    /// Ends the attempt `state` begun in the browser holding `browserSecret`: usable once, by that
    /// browser only, before it expires. Answers where the attempt meant to return.
    func claimAttempt(state: String?, browserSecret: String?, on db: any Database) async throws -> GoogleLoginAttempt {
        guard let state, !state.isEmpty else { throw GoogleSignInError.invalidState("The callback has no state.") }
        guard let browserSecret, !browserSecret.isEmpty else {
            throw GoogleSignInError.invalidState("This browser did not begin the sign-in (its cookie is missing).")
        }
        guard let sql = db as? any SQLDatabase else { throw HTTPProblem(.internalServerError) }
        let row = try await sql.delete(from: GoogleLoginAttempt.schema)
            .where("state", .equal, SQLBind(state))
            .where("browser_hash", .equal, SQLBind(Secrets.hash(browserSecret)))
            .returning(SQLLiteral.all)
            .first()
        guard let row else {
            throw GoogleSignInError.invalidState("The sign-in state is unknown, already used, or was begun in another browser.")
        }
        let attempt = try row.decode(fluentModel: GoogleLoginAttempt.self)
        guard attempt.expiresAt > clock.now() else { throw GoogleSignInError.invalidState("The sign-in took too long; start again.") }
        return attempt
    }

    /// Exchanges the code, checks the ID token and signs in its user.
    func finish(code: String?, attempt: GoogleLoginAttempt, on db: any Database) async throws -> (User, TokenPair) {
        guard let code, !code.isEmpty else { throw GoogleSignInError.exchangeFailed("The callback has no authorization code.") }
        let idToken = try await openID.exchange(code: code, verifier: attempt.codeVerifier)
        let claims = try check(try await keys.verifiedClaims(of: idToken), nonce: attempt.nonce)
        let user = try await user(for: claims, on: db)
        user.lastLogin = clock.now()
        try await user.save(on: db)
        db.logger.info("google sign-in", metadata: ["user": "\(user.id?.lowercased ?? "?")"])
        return (user, try await sessions.start(for: user, on: db))
    }

    /// The claims, if they are Google's, for this app, current, for this attempt, with a verified email.
    func check(_ claims: GoogleIDClaims, nonce: String) throws(GoogleSignInError) -> GoogleIDClaims {
        let now = clock.now()
        guard settings.issuers.contains(claims.iss) else { throw .invalidIDToken("The ID token was issued by \(claims.iss), not Google.") }
        guard claims.aud.value.contains(settings.clientID) else { throw .invalidIDToken("The ID token is for another application.") }
        guard claims.exp.value > now.addingTimeInterval(-Self.clockSkew) else { throw .invalidIDToken("The ID token has expired.") }
        guard claims.iat.value <= now.addingTimeInterval(Self.clockSkew) else { throw .invalidIDToken("The ID token was issued in the future.") }
        guard let tokenNonce = claims.nonce, Secrets.constantTimeEqual(tokenNonce, nonce) else {
            throw .invalidIDToken("The ID token's nonce does not match this sign-in.")
        }
        guard !claims.sub.isEmpty, let email = claims.email, !email.isEmpty else {
            throw .invalidIDToken("The ID token names no account or email.")
        }
        guard claims.emailVerified?.value == true else { throw .emailNotVerified }
        return claims
    }

    /// The user of this Google account: already linked, or the account with its verified email
    /// (linked now), or a new user with no password.
    private func user(for claims: GoogleIDClaims, on db: any Database) async throws -> User {
        let email = User.normalize(email: claims.email ?? "")
        if let linked = try await GoogleAccount.query(on: db).filter(\.$subject == claims.sub).with(\.$user).first() {
            guard linked.user.isActive else { throw GoogleSignInError.accountInactive }
            if linked.email != email {
                linked.email = email
                try await linked.save(on: db)
            }
            return linked.user
        }
        let user: User
        if let existing = try await User.find(email: email, on: db) {
            guard existing.isActive else { throw GoogleSignInError.accountInactive }
            user = existing
        } else {
            user = User(email: email, name: String((claims.name ?? "").prefix(150)), passwordHash: nil)
            try await user.create(on: db)
        }
        try await GoogleAccount(userID: try user.requireID(), subject: claims.sub, email: email).create(on: db)
        return user
    }

    /// A relative path on this server, or a URL on an allowed frontend origin.
    func isAllowedReturn(_ target: String) -> Bool {
        if target.hasPrefix("/") { return !target.hasPrefix("//") && !target.contains("\\") }
        guard let url = URL(string: target), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased() else { return false }
        let origin = "\(scheme)://\(host)" + (url.port.map { ":\($0)" } ?? "")
        return returnOrigins.contains(origin)
    }
}
