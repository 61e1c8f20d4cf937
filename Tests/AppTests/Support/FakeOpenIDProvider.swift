import Crypto
@testable import App
import CryptoExtras
import Foundation
import JWT
import NIOConcurrencyHelpers
import Vapor

/// An in-process stand-in for an OpenID provider — Google, or any other (Keycloak, Entra ID…) with
/// its discovery document: the user's consent (``authorize(_:)``), the token endpoint (checking
/// client, secret, redirect URI and PKCE as providers do) and the JWKS endpoint, signing ID tokens
/// with generated RSA keys that can be rotated.
final class FakeOpenIDProvider: Sendable {
    static let clientID = "test-client.apps.googleusercontent.com"
    static let clientSecret = "test-client-secret"

    /// How the discovery document is served.
    enum Discovery: Sendable {
        case served
        case missing
        /// Naming another issuer than the one it is read from.
        case lyingIssuer
        /// Never answered (until the provider shuts down).
        case hanging
    }

    /// Who signs in, and what may be wrong with the ID token.
    struct Identity: Sendable {
        var subject = "1098765432101234567890"
        var email = "ada@example.com"
        var emailVerified = true
        var name = "Ada Lovelace"
        var issuer = "https://accounts.google.com"
        var audience = FakeOpenIDProvider.clientID
        var issuedAgo: TimeInterval = 0
        var lifetime: TimeInterval = 3600
        var nonceOverride: String?
        /// Sign with a key the JWKS does not hold, under the JWKS key's id.
        var forgeSignature = false
        /// Claims besides the standard ones (`groups`, say).
        var extraClaims: [String: [String]] = [:]
        /// Leave `email_verified` out of the token.
        var omitEmailVerified = false
        /// Audiences besides `audience` (`aud` becomes a list), and the authorized party.
        var otherAudiences: [String] = []
        var authorizedParty: String?
    }

    private struct Grant {
        var nonce: String
        var codeChallenge: String
        var redirectURI: String
    }

    private struct State {
        var identity = Identity()
        var grants: [String: Grant] = [:]
        var tokenError: (status: Int, error: String)?
        var keyID = "key-1"
        var key: JWTKit.Insecure.RSA.PrivateKey
        var publishedKeys: [(id: String, key: JWTKit.Insecure.RSA.PrivateKey)]
        var jwksFetches = 0
        var discovery = Discovery.served
        var discoveryFetches = 0
    }

    let baseURL: String
    private let app: Application
    private let state: NIOLockedValueBox<State>

    /// RSA keys are slow to make; these are made once per test run.
    static let keys: [JWTKit.Insecure.RSA.PrivateKey] = (0..<3).compactMap { _ in
        try? JWTKit.Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
    }

    /// A provider; `issuerIsBase` for one that is discovered (its issuer is its own address, as for
    /// Keycloak and the rest), else Google's issuer.
    static func start(issuerIsBase: Bool = false, discovery: Discovery = .served, clientID: String = clientID) async throws -> FakeOpenIDProvider {
        let app = try await Application.make(.testing)
        app.logger.logLevel = .error
        app.middleware = Middlewares()
        let state = NIOLockedValueBox(State(key: keys[0], publishedKeys: [("key-1", keys[0])], discovery: discovery))
        let hang = HangingRequests()
        app.get(".well-known", "openid-configuration") { req async throws -> Response in
            let mode = state.withLockedValue { $0.discoveryFetches += 1; return $0.discovery }
            let base = "http://\(req.headers.first(name: .host) ?? "")"
            switch mode {
            case .served, .lyingIssuer:
                let issuer = mode == .lyingIssuer ? "https://elsewhere.example" : base
                let body = #"{"issuer":"\#(issuer)","authorization_endpoint":"\#(base)/authorize","token_endpoint":"\#(base)/token","jwks_uri":"\#(base)/jwks","response_types_supported":["code"],"id_token_signing_alg_values_supported":["RS256"]}"#
                return Response(status: .ok, headers: ["Content-Type": "application/json"], body: .init(string: body))
            case .missing:
                return Response(status: .notFound)
            case .hanging:
                await hang.wait()
                return Response(status: .serviceUnavailable)
            }
        }
        app.post("token") { req in try await Self.token(req, state, clientID: clientID) }
        // A browser's visit to the consent page: the user consents at once and goes back.
        app.get("authorize") { req -> Response in
            let query = Dictionary(uniqueKeysWithValues: (URLComponents(string: req.url.string)?.queryItems ?? []).map { ($0.name, $0.value ?? "") })
            let (redirectURI, code, stateParameter) = try Self.grant(query, state, clientID: clientID)
            return Response(status: .found, headers: ["Location": "\(redirectURI)?code=\(code)&state=\(stateParameter)"])
        }
        app.get("jwks") { _ in Self.jwks(state) }
        try await app.server.start(address: .hostname("127.0.0.1", port: 0))
        let port = app.http.server.shared.localAddress?.port ?? 0
        let provider = FakeOpenIDProvider(baseURL: "http://127.0.0.1:\(port)", app: app, state: state, hang: hang, clientID: clientID)
        if issuerIsBase { provider.setIdentity { $0.issuer = provider.baseURL } }
        provider.setIdentity { $0.audience = clientID }
        return provider
    }

    let clientID: String
    private let hang: HangingRequests

    private init(baseURL: String, app: Application, state: NIOLockedValueBox<State>, hang: HangingRequests, clientID: String) {
        self.baseURL = baseURL
        self.app = app
        self.state = state
        self.hang = hang
        self.clientID = clientID
    }

    func shutdown() async {
        hang.release()
        await app.server.shutdown()
        try? await app.asyncShutdown()
    }

    /// The Google settings that point the server here.
    var settings: [String: String] { settings(serverBase: "http://localhost:8000") }

    /// The settings that point the server here, for a server reached at `serverBase`.
    func settings(serverBase: String) -> [String: String] {
        [
            "GOOGLE_CLIENT_ID": clientID, "GOOGLE_CLIENT_SECRET": Self.clientSecret,
            "GOOGLE_REDIRECT_URI": serverBase + "/auth/google/callback/",
            "GOOGLE_AUTHORIZATION_ENDPOINT": baseURL + "/authorize", "GOOGLE_TOKEN_ENDPOINT": baseURL + "/token",
            "GOOGLE_JWKS_URI": baseURL + "/jwks",
        ]
    }

    /// The settings of an `OIDC_PROVIDERS` entry named `name` that point the server here.
    func oidcSettings(_ name: String, serverBase: String = "http://localhost:8000") -> [String: String] {
        let prefix = "OIDC_\(name.uppercased())_"
        return [
            prefix + "ISSUER": baseURL, prefix + "CLIENT_ID": clientID, prefix + "CLIENT_SECRET": Self.clientSecret,
            prefix + "REDIRECT_URI": serverBase + "/auth/oidc/\(name)/callback/",
        ]
    }

    func setIdentity(_ change: (inout Identity) -> Void) { state.withLockedValue { change(&$0.identity) } }
    /// Answers the discovery requests held open (and holds none from now on).
    func releaseHanging() { hang.release() }
    func setDiscovery(_ discovery: Discovery) { state.withLockedValue { $0.discovery = discovery } }
    var discoveryFetches: Int { state.withLockedValue { $0.discoveryFetches } }
    func failTokenEndpoint(status: Int, error: String) { state.withLockedValue { $0.tokenError = (status, error) } }
    var jwksFetches: Int { state.withLockedValue { $0.jwksFetches } }

    /// The provider starts signing with a new key (new id), and publishes it alongside the old one.
    func rotateKey() {
        state.withLockedValue { state in
            state.keyID = "key-2"
            state.key = Self.keys[1]
            state.publishedKeys.append(("key-2", Self.keys[1]))
        }
    }

    /// The user consents on Google's page: checks the request as Google would and answers the
    /// callback path (with `code` and `state`) the browser is sent back to.
    func authorize(_ location: String) throws -> String {
        guard let components = URLComponents(string: location), location.hasPrefix(baseURL + "/authorize") else {
            throw Abort(.badRequest, reason: "not an authorization request: \(location)")
        }
        let query = Dictionary(uniqueKeysWithValues: (components.queryItems ?? []).map { ($0.name, $0.value ?? "") })
        let (redirectURI, code, stateParameter) = try Self.grant(query, state, clientID: clientID)
        let path = URLComponents(string: redirectURI)?.path ?? "/auth/google/callback/"
        return "\(path)?code=\(code)&state=\(stateParameter)"
    }

    /// Checks an authorization request as Google would and grants a code for it.
    private static func grant(_ query: [String: String], _ state: NIOLockedValueBox<State>,
                              clientID: String) throws -> (redirectURI: String, code: String, state: String) {
        guard query["client_id"] == clientID, query["response_type"] == "code",
              query["scope"]?.split(separator: " ").contains("openid") == true, query["code_challenge_method"] == "S256",
              let challenge = query["code_challenge"], let nonce = query["nonce"], let stateParameter = query["state"],
              let redirectURI = query["redirect_uri"]
        else { throw Abort(.badRequest, reason: "invalid authorization request: \(query)") }
        let code = "code-" + UUID().uuidString
        state.withLockedValue { $0.grants[code] = Grant(nonce: nonce, codeChallenge: challenge, redirectURI: redirectURI) }
        return (redirectURI, code, stateParameter)
    }

    private static func token(_ req: Request, _ state: NIOLockedValueBox<State>, clientID: String) async throws -> Response {
        struct Form: Content {
            var grant_type: String?
            var code: String?
            var code_verifier: String?
            var client_id: String?
            var client_secret: String?
            var redirect_uri: String?
        }
        let form = try req.content.decode(Form.self, as: .urlEncodedForm)
        let (grant, failure, identity, key, keyID) = state.withLockedValue { state in
            let grant = form.code.flatMap { state.grants.removeValue(forKey: $0) }
            return (grant, state.tokenError, state.identity, state.key, state.keyID)
        }
        if let failure { return error(failure.status, failure.error) }
        guard form.grant_type == "authorization_code", form.client_id == clientID, form.client_secret == clientSecret else {
            return error(401, "invalid_client")
        }
        guard let grant, form.redirect_uri == grant.redirectURI, let verifier = form.code_verifier,
              Secrets.base64URL(Data(SHA256.hash(data: Data(verifier.utf8)))) == grant.codeChallenge
        else { return error(400, "invalid_grant") }

        let now = Date().addingTimeInterval(-identity.issuedAgo)
        let claims = FakeIDClaims(
            iss: identity.issuer, aud: identity.audience, sub: identity.subject, email: identity.email,
            email_verified: identity.omitEmailVerified ? nil : identity.emailVerified, name: identity.name,
            nonce: identity.nonceOverride ?? grant.nonce,
            iat: Int(now.timeIntervalSince1970), exp: Int(now.addingTimeInterval(identity.lifetime).timeIntervalSince1970),
            extra: identity.extraClaims, otherAudiences: identity.otherAudiences, azp: identity.authorizedParty
        )
        let signer = JWTKeyCollection()
        await signer.add(rsa: identity.forgeSignature ? keys[2] : key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: keyID))
        let idToken = try await signer.sign(claims, kid: JWKIdentifier(string: keyID))
        let body = #"{"access_token":"ya29.fake","expires_in":3599,"token_type":"Bearer","scope":"openid email profile","id_token":"\#(idToken)"}"#
        return Response(status: .ok, headers: ["Content-Type": "application/json"], body: .init(string: body))
    }

    private static func jwks(_ state: NIOLockedValueBox<State>) -> Response {
        let published = state.withLockedValue { state in
            state.jwksFetches += 1
            return state.publishedKeys
        }
        let keys = published.compactMap { id, key -> String? in
            guard let primitives = try? key.publicKey.getKeyPrimitives() else { return nil }
            return #"{"kty":"RSA","alg":"RS256","use":"sig","kid":"\#(id)","n":"\#(Secrets.base64URL(primitives.modulus))","e":"\#(Secrets.base64URL(primitives.publicExponent))"}"#
        }
        return Response(status: .ok, headers: ["Content-Type": "application/json", "Cache-Control": "public, max-age=3600"],
                        body: .init(string: #"{"keys":[\#(keys.joined(separator: ","))]}"#))
    }

    private static func error(_ status: Int, _ error: String) -> Response {
        Response(status: HTTPResponseStatus(statusCode: status), headers: ["Content-Type": "application/json"],
                 body: .init(string: #"{"error":"\#(error)","error_description":"emulated \#(error)"}"#))
    }
}

/// An ID token's claims as providers write them, with any others (`groups`).
struct FakeIDClaims: JWTPayload {
    var iss: String
    var aud: String
    var sub: String
    var email: String
    var email_verified: Bool?
    var name: String
    var nonce: String
    var iat: Int
    var exp: Int
    var extra: [String: [String]]
    var otherAudiences: [String] = []
    var azp: String?

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(iss: String, aud: String, sub: String, email: String, email_verified: Bool?, name: String, nonce: String, iat: Int, exp: Int,
         extra: [String: [String]], otherAudiences: [String] = [], azp: String? = nil) {
        (self.iss, self.aud, self.sub, self.email, self.email_verified) = (iss, aud, sub, email, email_verified)
        (self.name, self.nonce, self.iat, self.exp, self.extra) = (name, nonce, iat, exp, extra)
        (self.otherAudiences, self.azp) = (otherAudiences, azp)
    }

    init(from decoder: any Decoder) throws { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "not read")) }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(iss, forKey: Key(stringValue: "iss"))
        if otherAudiences.isEmpty {
            try container.encode(aud, forKey: Key(stringValue: "aud"))
        } else {
            try container.encode([aud] + otherAudiences, forKey: Key(stringValue: "aud"))
        }
        try container.encodeIfPresent(azp, forKey: Key(stringValue: "azp"))
        try container.encode(sub, forKey: Key(stringValue: "sub"))
        try container.encode(email, forKey: Key(stringValue: "email"))
        try container.encodeIfPresent(email_verified, forKey: Key(stringValue: "email_verified"))
        try container.encode(name, forKey: Key(stringValue: "name"))
        try container.encode(nonce, forKey: Key(stringValue: "nonce"))
        try container.encode(iat, forKey: Key(stringValue: "iat"))
        try container.encode(exp, forKey: Key(stringValue: "exp"))
        for (key, value) in extra { try container.encode(value, forKey: Key(stringValue: key)) }
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Requests held open until ``release()``.
final class HangingRequests: Sendable {
    private let state = NIOLockedValueBox<(released: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLockedValue { state in
                if state.released { return true }
                state.waiting.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func release() {
        let waiting = state.withLockedValue { state in
            state.released = true
            defer { state.waiting = [] }
            return state.waiting
        }
        waiting.forEach { $0.resume() }
    }
}
