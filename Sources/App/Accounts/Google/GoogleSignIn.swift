import Crypto
import Fluent
import FluentSQL
import Foundation
import SQLKit
import Vapor

/// Signing in with Google (OpenID Connect, authorization code flow with PKCE): begins by sending
/// the browser to Google with a one-time state and nonce; finishes by exchanging the code, checking
/// the ID token, and finding the user of that Google account — linking it to the account with the
/// same email, or creating one. A browser then gets a one-time code for the session, never the
/// tokens themselves (see ``issueCode(for:notices:on:)``).
struct GoogleSignIn: Sendable {
    let settings: GoogleSettings
    let openID: GoogleOpenIDClient
    let keys: GoogleKeySet
    let sessions: SessionIssuer
    let accounts: AccountService
    let clock: any WallClock
    /// Origins a sign-in may return to (the frontend's); paths on this server are always allowed.
    let returnOrigins: Set<String>

    /// How long a begun sign-in may take.
    static let attemptLifetime: TimeInterval = 600
    /// How long the one-time code handed to the browser may wait to be exchanged.
    static let codeLifetime: TimeInterval = 60
    /// Tolerated difference between Google's clock and ours.
    static let clockSkew: TimeInterval = 60

    /// Who signed in, and what the client should be told about the account.
    struct SignedIn: Sendable {
        var user: User
        var notices: [AccountNotice]
    }

    /// Where a sign-in may return to: `next` when it is allowed (else ``GoogleSignInError/returnNotAllowed(_:)``).
    func returnTarget(_ raw: String) throws(GoogleSignInError) -> RedirectTarget {
        guard let target = RedirectTarget(raw, allowedOrigins: returnOrigins) else { throw .returnNotAllowed(raw) }
        return target
    }

    /// Records a new attempt and answers where to send the browser, and the secret for its cookie.
    func begin(returnTo: RedirectTarget?, on db: any Database) async throws -> (authorizationURL: String, browserSecret: String) {
        let now = clock.now()
        try await GoogleLoginAttempt.query(on: db).filter(\.$expiresAt < now).delete()

        let state = Secrets.randomToken()
        let nonce = Secrets.randomToken()
        let verifier = Secrets.randomToken() + Secrets.randomToken()
        let browserSecret = Secrets.randomToken()
        try await GoogleLoginAttempt(
            state: state, browserHash: Secrets.hash(browserSecret), nonce: nonce, codeVerifier: verifier,
            returnTo: returnTo?.url, expiresAt: now.addingTimeInterval(Self.attemptLifetime)
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
        let row = try await db.sql().delete(from: GoogleLoginAttempt.schema)
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

    /// Exchanges the code, checks the ID token and finds (or makes) its user.
    func finish(code: String?, attempt: GoogleLoginAttempt, on db: any Database) async throws -> SignedIn {
        guard let code, !code.isEmpty else { throw GoogleSignInError.exchangeFailed("The callback has no authorization code.") }
        let idToken = try await openID.exchange(code: code, verifier: attempt.codeVerifier)
        let claims = try check(try await keys.verifiedClaims(of: idToken), nonce: attempt.nonce)
        // A password removed (a takeover) is announced once the transaction has committed.
        let signedIn = try await accounts.changing(on: db) { tx, changes in try await user(for: claims, on: tx, changes: changes) }
        db.logger.info("google sign-in", metadata: ["user": "\(signedIn.user.id?.lowercased ?? "?")"])
        return signedIn
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

    /// The user of this Google account: already linked, or the account with its email (linked
    /// now), or a new user with no password.
    ///
    /// Linking by email trusts Google's proof of the address. An account that signed up with a
    /// password never proved it owned its email, so whoever registered it may not be the owner (a
    /// squatter who registers `victim@gmail.com` first). When Google proves that email, the Google
    /// identity wins: the password is removed and every session of the account signed out, so
    /// that a squatter keeps nothing; the owner is told (``AccountNotice/passwordRemoved``).
    /// Accounts whose email was proven (by Google before, or by the operator who created them with
    /// `createsuperuser`) are linked as they are.
    private func user(for claims: GoogleIDClaims, on db: any Database, changes: AccountChanges) async throws -> SignedIn {
        let email = User.normalize(email: claims.email ?? "")
        let now = clock.now()
        if let linked = try await GoogleAccount.query(on: db).filter(\.$subject == claims.sub).with(\.$user).first() {
            guard linked.user.isActive else { throw GoogleSignInError.accountInactive }
            if linked.email != email {
                linked.email = email
                try await linked.save(on: db)
            }
            linked.user.lastLogin = now
            try await linked.user.save(on: db)
            return SignedIn(user: linked.user, notices: [])
        }
        var notices: [AccountNotice] = []
        let user: User
        if let existing = try await User.find(email: email, on: db) {
            guard existing.isActive else { throw GoogleSignInError.accountInactive }
            if existing.emailVerifiedAt == nil, existing.passwordHash != nil {
                try await accounts.removePassword(of: existing, on: db, changes: changes)
                notices.append(.passwordRemoved)
                db.logger.notice("google sign-in proved an email held by an unproven password account; password removed, sessions revoked",
                                 metadata: ["user": "\(existing.id?.lowercased ?? "?")"])
            }
            user = existing
        } else {
            user = User(email: email, name: String((claims.name ?? "").prefix(150)), passwordHash: nil)
        }
        user.emailVerifiedAt = user.emailVerifiedAt ?? now
        user.lastLogin = now
        try await user.save(on: db)
        try await GoogleAccount(userID: try user.requireID(), subject: claims.sub, email: email).create(on: db)
        return SignedIn(user: user, notices: notices)
    }

    // MARK: The one-time code

    /// A single-use code for `signedIn`'s session, valid for ``codeLifetime``: what the browser gets
    /// in the return URL's fragment instead of the tokens. Only its hash is stored.
    func issueCode(for signedIn: SignedIn, on db: any Database) async throws -> String {
        let code = Secrets.randomToken()
        try await GoogleSignInCode(
            codeHash: Secrets.hash(code), userID: try signedIn.user.requireID(),
            notices: signedIn.notices.map(\.rawValue).joined(separator: ","),
            expiresAt: clock.now().addingTimeInterval(Self.codeLifetime)
        ).create(on: db)
        return code
    }

    /// Spends `code` and starts the session it stands for; ``GoogleSignInError/invalidCode`` when it is
    /// unknown, used or expired, or its account was deactivated meanwhile.
    func redeem(code: String, on db: any Database) async throws -> (SignedIn, TokenPair) {
        let now = clock.now()
        try await GoogleSignInCode.query(on: db).filter(\.$expiresAt < now).delete()
        let row = try await db.sql().delete(from: GoogleSignInCode.schema)
            .where("code_hash", .equal, SQLBind(Secrets.hash(code)))
            .returning(SQLLiteral.all)
            .first()
        guard let row else { throw GoogleSignInError.invalidCode }
        let record = try row.decode(fluentModel: GoogleSignInCode.self)
        guard record.expiresAt > now, let user = try await User.find(record.$user.id, on: db), user.isActive else {
            throw GoogleSignInError.invalidCode
        }
        let notices = record.notices.split(separator: ",").compactMap { AccountNotice(rawValue: String($0)) }
        return (SignedIn(user: user, notices: notices), try await sessions.start(for: user, on: db))
    }
}
