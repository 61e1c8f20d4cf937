import Crypto
import Fluent
import FluentSQL
import Foundation
import SQLKit
import Vapor

/// Signing in through one OpenID provider (authorization code flow with PKCE): begins by sending
/// the browser there with a one-time state and nonce; finishes by exchanging the code, checking
/// the ID token, and finding the user of that identity (``OpenIDAccountLinking``). A browser then
/// gets a one-time code for the session, never the tokens themselves (``SignInCodes``).
struct OpenIDSignIn: Sendable {
    let provider: OpenIDProviderSettings
    let openID: OpenIDClient
    let endpoints: OpenIDEndpointSource
    let keys: OpenIDKeySet
    let linking: OpenIDAccountLinking
    let clock: any WallClock

    /// How long a begun sign-in may take.
    static let attemptLifetime: TimeInterval = 600
    /// Tolerated difference between the provider's clock and ours.
    static let clockSkew: TimeInterval = 60

    private var name: String { provider.displayName }

    /// Records a new attempt and answers where to send the browser, and the secret for its cookie.
    func begin(returnTo: RedirectTarget?, on db: any Database) async throws -> (authorizationURL: String, browserSecret: String) {
        let endpoints = try await endpoints.endpoints()
        let now = clock.now()
        try await SignInAttempt.query(on: db).filter(\.$expiresAt < now).delete()

        let state = Secrets.randomToken()
        let nonce = Secrets.randomToken()
        let verifier = Secrets.randomToken() + Secrets.randomToken()
        let browserSecret = Secrets.randomToken()
        try await SignInAttempt(
            provider: provider.name, state: state, browserHash: Secrets.hash(browserSecret), nonce: nonce, codeVerifier: verifier,
            returnTo: returnTo?.url, expiresAt: now.addingTimeInterval(Self.attemptLifetime)
        ).create(on: db)

        var url = URLComponents(string: endpoints.authorization) ?? URLComponents()
        url.queryItems = (url.queryItems ?? []) + [
            URLQueryItem(name: "client_id", value: provider.clientID),
            URLQueryItem(name: "redirect_uri", value: provider.redirectURI),
            URLQueryItem(name: "response_type", value: "code"),
            URLQueryItem(name: "scope", value: provider.scopes),
            URLQueryItem(name: "state", value: state),
            URLQueryItem(name: "nonce", value: nonce),
            URLQueryItem(name: "code_challenge", value: Secrets.base64URL(Data(SHA256.hash(data: Data(verifier.utf8))))),
            URLQueryItem(name: "code_challenge_method", value: "S256"),
        ] + (provider.kind == .google ? [URLQueryItem(name: "prompt", value: "select_account")] : [])
        return (url.string ?? endpoints.authorization, browserSecret)
    }

    /// Ends the attempt `state` begun at this provider in the browser holding `browserSecret`:
    /// usable once, by that browser only, before it expires. Answers where the attempt meant to return.
    func claimAttempt(state: String?, browserSecret: String?, on db: any Database) async throws -> SignInAttempt {
        guard let state, !state.isEmpty, state.utf8.count <= 128 else { throw SignInError.invalidState("The callback has no state.") }
        guard let browserSecret, !browserSecret.isEmpty, browserSecret.utf8.count <= 128 else {
            throw SignInError.invalidState("This browser did not begin the sign-in (its cookie is missing).")
        }
        let row = try await db.sql().delete(from: SignInAttempt.schema)
            .where("state", .equal, SQLBind(state))
            .where("browser_hash", .equal, SQLBind(Secrets.hash(browserSecret)))
            .where("provider", .equal, SQLBind(provider.name))
            .returning(SQLLiteral.all)
            .first()
        guard let row else {
            throw SignInError.invalidState("The sign-in state is unknown, already used, or was begun in another browser.")
        }
        let attempt = try row.decode(fluentModel: SignInAttempt.self)
        guard attempt.expiresAt > clock.now() else { throw SignInError.invalidState("The sign-in took too long; start again.") }
        return attempt
    }

    /// Exchanges the code, checks the ID token and finds (or makes) its user.
    func finish(code: String?, attempt: SignInAttempt, on db: any Database) async throws -> SignedIn {
        guard let code, !code.isEmpty, code.utf8.count <= 4096 else {
            throw SignInError.exchangeFailed(provider: name, reason: "The callback has no authorization code.")
        }
        let endpoints = try await endpoints.endpoints()
        let idToken = try await openID.exchange(code: code, verifier: attempt.codeVerifier, at: endpoints)
        let claims = try check(try await keys.verifiedClaims(of: idToken, endpoints: endpoints), nonce: attempt.nonce, issuers: endpoints.issuers)
        let signedIn = try await linking.user(for: claims, at: provider, on: db)
        db.logger.info("openid sign-in", metadata: ["provider": "\(provider.name)", "user": "\(signedIn.user.id?.lowercased ?? "?")"])
        return signedIn
    }

    /// The claims, if they come from this provider, for this app (its only audience, or the
    /// authorized party), current, for this attempt, with an email (verified, for Google) of an
    /// allowed domain (not unverified, for the others).
    func check(_ claims: OpenIDClaims, nonce: String, issuers: [String]) throws(SignInError) -> OpenIDClaims {
        let now = clock.now()
        guard issuers.contains(claims.iss) else {
            throw .invalidIDToken(provider: name, reason: "The ID token was issued by \(claims.iss.prefix(200)), not \(name).")
        }
        guard claims.aud.value.contains(provider.clientID) else { throw .invalidIDToken(provider: name, reason: "The ID token is for another application.") }
        // A token for several audiences must name this one as the party it was issued to.
        guard claims.aud.value.count == 1 || claims.strings["azp"] == [provider.clientID] else {
            throw .invalidIDToken(provider: name, reason: "The ID token was issued to another application (azp).")
        }
        guard claims.exp.value > now.addingTimeInterval(-Self.clockSkew) else { throw .invalidIDToken(provider: name, reason: "The ID token has expired.") }
        guard claims.iat.value <= now.addingTimeInterval(Self.clockSkew) else {
            throw .invalidIDToken(provider: name, reason: "The ID token was issued in the future.")
        }
        guard let tokenNonce = claims.nonce, Secrets.constantTimeEqual(tokenNonce, nonce) else {
            throw .invalidIDToken(provider: name, reason: "The ID token's nonce does not match this sign-in.")
        }
        guard !claims.sub.isEmpty, claims.sub.utf8.count <= 255, let email = claims.email, !email.isEmpty,
              email.utf8.count <= 254, email.contains("@") else {
            throw .invalidIDToken(provider: name, reason: "The ID token names no account or no usable email (ask for the email scope).")
        }
        if provider.kind == .google, claims.emailVerified != true { throw .emailNotVerified(provider: name) }
        if !provider.allowedDomains.isEmpty {
            // An address the provider says it has not verified proves no domain (a provider that
            // says nothing, as Entra ID, vouches for the addresses it manages).
            guard claims.emailVerified != false else { throw .domainNotAllowed(name) }
            let domain = User.normalize(email: email).split(separator: "@").last.map(String.init) ?? ""
            guard provider.allowedDomains.contains(domain) else { throw .domainNotAllowed(name) }
        }
        return claims
    }
}

/// Who signed in, and what the client should be told about the account.
struct SignedIn: Sendable {
    var user: User
    var notices: [AccountNotice]
}
