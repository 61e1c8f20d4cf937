import Foundation
import JWT
import NIOConcurrencyHelpers

/// The claims of an ID token that sign-in uses, checked by ``OpenIDSignIn`` against its clock; and
/// every claim that is a string or a list of strings, by name, for the groups claim a provider
/// names (`groups`, `roles`, …).
struct OpenIDClaims: JWTPayload {
    var iss: String
    var aud: AudienceClaim
    var sub: String
    var exp: ExpirationClaim
    var iat: IssuedAtClaim
    var nonce: String?
    var email: String?
    /// `email_verified`: a JSON boolean, or the string "true" as some providers write it.
    var emailVerified: Bool?
    var name: String?
    var strings: [String: [String]] = [:]

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        iss = try container.decode(String.self, forKey: Key(stringValue: "iss"))
        aud = try container.decode(AudienceClaim.self, forKey: Key(stringValue: "aud"))
        sub = try container.decode(String.self, forKey: Key(stringValue: "sub"))
        exp = try container.decode(ExpirationClaim.self, forKey: Key(stringValue: "exp"))
        iat = try container.decode(IssuedAtClaim.self, forKey: Key(stringValue: "iat"))
        nonce = try? container.decodeIfPresent(String.self, forKey: Key(stringValue: "nonce"))
        email = try? container.decodeIfPresent(String.self, forKey: Key(stringValue: "email"))
        name = try? container.decodeIfPresent(String.self, forKey: Key(stringValue: "name"))
        let verified = Key(stringValue: "email_verified")
        if let flag = try? container.decode(Bool.self, forKey: verified) {
            emailVerified = flag
        } else if let text = try? container.decode(String.self, forKey: verified) {
            emailVerified = text.lowercased() == "true"
        } else {
            emailVerified = nil
        }
        for key in container.allKeys {
            if let list = try? container.decode([String].self, forKey: key) {
                strings[key.stringValue] = list
            } else if let value = try? container.decode(String.self, forKey: key) {
                strings[key.stringValue] = [value]
            }
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(iss, forKey: Key(stringValue: "iss"))
        try container.encode(aud, forKey: Key(stringValue: "aud"))
        try container.encode(sub, forKey: Key(stringValue: "sub"))
        try container.encode(exp, forKey: Key(stringValue: "exp"))
        try container.encode(iat, forKey: Key(stringValue: "iat"))
        try container.encodeIfPresent(nonce, forKey: Key(stringValue: "nonce"))
        try container.encodeIfPresent(email, forKey: Key(stringValue: "email"))
        try container.encodeIfPresent(emailVerified, forKey: Key(stringValue: "email_verified"))
        try container.encodeIfPresent(name, forKey: Key(stringValue: "name"))
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Where a provider's endpoints come from: Google's are fixed; any other provider's are read from
/// its discovery document when first needed (start-up asks at once, ``OpenIDSignIns/discoverAll``),
/// kept once read, and asked for again at most every ``retryInterval`` while it fails, so that a
/// provider down at start-up works once it answers and a broken one is not hammered.
actor OpenIDEndpointSource {
    private let openID: OpenIDClient
    private let clock: any WallClock
    private var known: OpenIDEndpoints?
    private var lastFailure: (SignInError, at: Date)?
    private var asking: Task<Result<OpenIDEndpoints, SignInError>, Never>?
    static let retryInterval: TimeInterval = 10

    init(openID: OpenIDClient, clock: any WallClock) {
        self.openID = openID
        self.clock = clock
        known = openID.provider.endpoints
    }

    /// Why the last discovery failed, while no endpoints are known.
    var failure: SignInError? { known == nil ? lastFailure?.0 : nil }

    func endpoints() async throws(SignInError) -> OpenIDEndpoints {
        if let known { return known }
        if asking == nil {
            if let (error, at) = lastFailure, clock.now().timeIntervalSince(at) < Self.retryInterval { throw error }
            let (openID, issuer) = (openID, openID.provider.issuer ?? "")
            asking = Task {
                do throws(SignInError) { return .success(try await openID.discover(issuer: issuer)) } catch { return .failure(error) }
            }
        }
        guard let asking else { throw .providerUnavailable(provider: openID.provider.displayName, reason: "Not discovered.") }
        let result = await asking.value
        self.asking = nil
        switch result {
        case .success(let endpoints):
            known = endpoints
            return endpoints
        case .failure(let error):
            lastFailure = (error, clock.now())
            throw error
        }
    }
}

/// A provider's signing keys, fetched when first needed, kept for as long as the provider allows,
/// and fetched again when a token names a key not seen yet (providers rotate them), at most every
/// `minimumRefetchInterval` so that forged key ids cannot make us hammer the provider.
actor OpenIDKeySet {
    private let openID: OpenIDClient
    private let clock: any WallClock
    private var keys: JWTKeyCollection?
    private var knownKeyIDs: Set<String> = []
    private var expiresAt = Date.distantPast
    private var fetchedAt = Date.distantPast
    private let minimumRefetchInterval: TimeInterval = 10
    /// Asymmetric algorithms only: `none` and HMAC (whose key would be the client secret, or a key
    /// a JWKS publishes) are refused before any key is looked at.
    static let algorithms: Set<String> = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]

    init(openID: OpenIDClient, clock: any WallClock) {
        self.openID = openID
        self.clock = clock
    }

    /// The claims of `token` if the provider's current keys signed it; claims are not checked here.
    func verifiedClaims(of token: String, endpoints: OpenIDEndpoints) async throws(SignInError) -> OpenIDClaims {
        let name = openID.provider.displayName
        let header = try Self.header(of: token, provider: name)
        guard let alg = header.alg, Self.algorithms.contains(alg) else {
            throw .invalidIDToken(provider: name, reason: "ID tokens must be signed with RS256 or another asymmetric algorithm, not \(header.alg ?? "none").")
        }
        let now = clock.now()
        let mayRefetch = now.timeIntervalSince(fetchedAt) >= minimumRefetchInterval
        if keys == nil || (now >= expiresAt && mayRefetch) || (header.kid.map { !knownKeyIDs.contains($0) } ?? false && mayRefetch) {
            let (jwks, maxAge) = try await openID.fetchKeys(at: endpoints)
            let collection = JWTKeyCollection()
            do {
                try await collection.add(jwks: jwks)
            } catch {
                throw .providerUnavailable(provider: name, reason: "\(name)'s keys could not be read.")
            }
            keys = collection
            knownKeyIDs = Set(jwks.keys.compactMap { $0.keyIdentifier?.string })
            fetchedAt = now
            expiresAt = now.addingTimeInterval(maxAge ?? 3600)
        }
        guard let keys else { throw .providerUnavailable(provider: name, reason: "\(name)'s keys are not available.") }
        do {
            return try await keys.verify(token, as: OpenIDClaims.self)
        } catch {
            throw .invalidIDToken(provider: name, reason: "The ID token's signature could not be verified with \(name)'s keys.")
        }
    }

    private struct Header: Decodable {
        var alg: String?
        var kid: String?
    }

    private static func header(of token: String, provider: String) throws(SignInError) -> Header {
        guard token.utf8.count <= 64 << 10, let first = token.split(separator: ".").first else {
            throw .invalidIDToken(provider: provider, reason: "The ID token is malformed.")
        }
        var base64 = first.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw .invalidIDToken(provider: provider, reason: "The ID token is malformed.")
        }
        return header
    }
}
