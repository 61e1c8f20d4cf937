import Foundation
import JWT
import Vapor

/// The claims of a Google ID token that sign-in uses; checked by ``GoogleSignIn`` against its clock.
struct GoogleIDClaims: JWTPayload {
    var iss: String
    var aud: AudienceClaim
    var sub: String
    var exp: ExpirationClaim
    var iat: IssuedAtClaim
    var nonce: String?
    var email: String?
    var emailVerified: BoolClaim?
    var name: String?

    enum CodingKeys: String, CodingKey {
        case iss, aud, sub, exp, iat, nonce, email, emailVerified = "email_verified", name
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Google's OpenID endpoints: exchanging an authorization code, and the keys that sign ID tokens.
struct GoogleOpenIDClient: Sendable {
    let settings: GoogleSettings
    let client: any Client

    private struct TokenResponse: Decodable {
        var id_token: String?
        var error: String?
        var error_description: String?
    }

    /// Exchanges `code` (with its PKCE verifier) for the ID token.
    func exchange(code: String, verifier: String) async throws(GoogleSignInError) -> String {
        let response: ClientResponse
        do {
            response = try await client.post(URI(string: settings.tokenEndpoint)) { request in
                request.timeout = .seconds(15)
                try request.content.encode([
                    "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                    "client_id": settings.clientID, "client_secret": settings.clientSecret, "redirect_uri": settings.redirectURI,
                ], as: .urlEncodedForm)
            }
        } catch {
            throw .providerUnavailable("Google's token endpoint could not be reached.")
        }
        let body = try? response.content.decode(TokenResponse.self, as: .json)
        guard response.status == .ok else {
            guard response.status.code < 500, let error = body?.error else {
                throw .providerUnavailable("Google's token endpoint answered \(response.status.code).")
            }
            throw .exchangeFailed("Google refused the authorization code: \(error)" + (body?.error_description.map { " (\($0))" } ?? ""))
        }
        guard let idToken = body?.id_token else { throw .exchangeFailed("Google's answer held no ID token.") }
        return idToken
    }

    /// The current signing keys, and how long Google says they may be cached.
    func fetchKeys() async throws(GoogleSignInError) -> (JWKS, maxAge: TimeInterval?) {
        do {
            let response = try await client.get(URI(string: settings.jwksURI)) { $0.timeout = .seconds(15) }
            guard response.status == .ok, let body = response.body else {
                throw GoogleSignInError.providerUnavailable("Google's keys could not be fetched (\(response.status.code)).")
            }
            let jwks = try JSONDecoder().decode(JWKS.self, from: Data(body.readableBytesView))
            let maxAge = response.headers.cacheControl?.maxAge.map(TimeInterval.init)
            return (jwks, maxAge)
        } catch let error as GoogleSignInError {
            throw error
        } catch {
            throw .providerUnavailable("Google's keys could not be fetched.")
        }
    }
}

/// Google's signing keys, fetched when first needed, kept for as long as Google allows, and
/// fetched again when a token names a key not seen yet (Google rotates them), at most every
/// `minimumRefetchInterval` so that forged key ids cannot make us hammer Google.
actor GoogleKeySet {
    private let openID: GoogleOpenIDClient
    private let clock: any WallClock
    private var keys: JWTKeyCollection?
    private var knownKeyIDs: Set<String> = []
    private var expiresAt = Date.distantPast
    private var fetchedAt = Date.distantPast
    private let minimumRefetchInterval: TimeInterval = 10

    init(openID: GoogleOpenIDClient, clock: any WallClock) {
        self.openID = openID
        self.clock = clock
    }

    /// The claims of `token` if Google's current keys signed it with RS256; claims are not checked here.
    func verifiedClaims(of token: String) async throws(GoogleSignInError) -> GoogleIDClaims {
        let header = try Self.header(of: token)
        guard header.alg == "RS256" else { throw .invalidIDToken("ID tokens must be signed with RS256, not \(header.alg ?? "none").") }
        let now = clock.now()
        let mayRefetch = now.timeIntervalSince(fetchedAt) >= minimumRefetchInterval
        if keys == nil || (now >= expiresAt && mayRefetch) || (header.kid.map { !knownKeyIDs.contains($0) } ?? false && mayRefetch) {
            let (jwks, maxAge) = try await openID.fetchKeys()
            let collection = JWTKeyCollection()
            do {
                try await collection.add(jwks: jwks)
            } catch {
                throw .providerUnavailable("Google's keys could not be read.")
            }
            keys = collection
            knownKeyIDs = Set(jwks.keys.compactMap { $0.keyIdentifier?.string })
            fetchedAt = now
            expiresAt = now.addingTimeInterval(maxAge ?? 3600)
        }
        guard let keys else { throw .providerUnavailable("Google's keys are not available.") }
        do {
            return try await keys.verify(token, as: GoogleIDClaims.self)
        } catch {
            throw .invalidIDToken("The ID token's signature could not be verified with Google's keys.")
        }
    }

    private struct Header: Decodable {
        var alg: String?
        var kid: String?
    }

    private static func header(of token: String) throws(GoogleSignInError) -> Header {
        guard let first = token.split(separator: ".").first else { throw .invalidIDToken("The ID token is malformed.") }
        var base64 = first.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw .invalidIDToken("The ID token is malformed.")
        }
        return header
    }
}
