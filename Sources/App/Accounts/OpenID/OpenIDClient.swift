import Foundation
import NIOCore
import JWT
import Vapor

/// A provider's endpoints as this server calls them: its discovery document, the token endpoint
/// (exchanging an authorization code) and the keys that sign its ID tokens. Every call is bounded
/// by ``timeout``; a failure says which provider and what went wrong, never a secret.
struct OpenIDClient: Sendable {
    let provider: OpenIDProviderSettings
    let client: any Client
    var timeout: TimeAmount = .seconds(10)

    private var name: String { provider.displayName }

    /// The provider's discovery document, checked: it must name the configured issuer exactly (a
    /// document that names another could hand out another issuer's endpoints) and give http(s)
    /// authorization, token and key endpoints.
    func discover(issuer: String) async throws(SignInError) -> OpenIDEndpoints {
        struct Document: Decodable {
            var issuer: String?
            var authorization_endpoint: String?
            var token_endpoint: String?
            var jwks_uri: String?
        }
        let base = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        let response: ClientResponse
        do {
            response = try await client.get(URI(string: base + "/.well-known/openid-configuration")) { $0.timeout = timeout }
        } catch {
            throw .providerUnavailable(provider: name, reason: "\(name)'s discovery document could not be fetched (\(Self.describe(error))).")
        }
        guard response.status == .ok else {
            throw .providerUnavailable(provider: name, reason: "\(name)'s discovery document answered \(response.status.code).")
        }
        guard let body = response.body, body.readableBytes <= 1 << 20,
              let document = try? JSONDecoder().decode(Document.self, from: Data(body.readableBytesView)) else {
            throw .providerUnavailable(provider: name, reason: "\(name)'s discovery document is not a JSON object.")
        }
        guard document.issuer == issuer else {
            throw .providerUnavailable(provider: name, reason: "\(name)'s discovery document names the issuer '\(document.issuer ?? "")', not '\(issuer)'.")
        }
        // As secure as the issuer: an https issuer's endpoints are https too.
        let secure = issuer.lowercased().hasPrefix("https:")
        guard let authorization = document.authorization_endpoint, Self.isHTTPURL(authorization, secure: secure),
              let token = document.token_endpoint, Self.isHTTPURL(token, secure: secure),
              let jwks = document.jwks_uri, Self.isHTTPURL(jwks, secure: secure) else {
            throw .providerUnavailable(provider: name, reason: "\(name)'s discovery document lacks an \(secure ? "https" : "http(s)") authorization, token or jwks endpoint.")
        }
        return OpenIDEndpoints(authorization: authorization, token: token, jwks: jwks, issuers: [issuer])
    }

    private struct TokenResponse: Decodable {
        var id_token: String?
        var error: String?
        var error_description: String?
    }

    /// Exchanges `code` (with its PKCE verifier) for the ID token.
    func exchange(code: String, verifier: String, at endpoints: OpenIDEndpoints) async throws(SignInError) -> String {
        let response: ClientResponse
        do {
            response = try await client.post(URI(string: endpoints.token)) { request in
                request.timeout = timeout
                try request.content.encode([
                    "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                    "client_id": provider.clientID, "client_secret": provider.clientSecret, "redirect_uri": provider.redirectURI,
                ], as: .urlEncodedForm)
            }
        } catch {
            throw .providerUnavailable(provider: name, reason: "\(name)'s token endpoint could not be reached.")
        }
        let body = try? response.content.decode(TokenResponse.self, as: .json)
        guard response.status == .ok else {
            guard response.status.code < 500, let error = body?.error else {
                throw .providerUnavailable(provider: name, reason: "\(name)'s token endpoint answered \(response.status.code).")
            }
            let description = body?.error_description.map { " (\($0.prefix(200)))" } ?? ""
            throw .exchangeFailed(provider: name, reason: "\(name) refused the authorization code: \(error.prefix(100))\(description)")
        }
        guard let idToken = body?.id_token else { throw .exchangeFailed(provider: name, reason: "\(name)'s answer held no ID token.") }
        return idToken
    }

    /// The current signing keys, and how long the provider says they may be cached.
    func fetchKeys(at endpoints: OpenIDEndpoints) async throws(SignInError) -> (JWKS, maxAge: TimeInterval?) {
        do {
            let response = try await client.get(URI(string: endpoints.jwks)) { $0.timeout = timeout }
            guard response.status == HTTPStatus.ok, let body = response.body, body.readableBytes <= 1 << 20 else {
                throw SignInError.providerUnavailable(provider: name, reason: "\(name)'s keys could not be fetched (\(response.status.code)).")
            }
            let jwks = try JSONDecoder().decode(JWKS.self, from: Data(body.readableBytesView))
            let maxAge = response.headers.cacheControl?.maxAge.map(TimeInterval.init)
            return (jwks, maxAge)
        } catch let error as SignInError {
            throw error
        } catch {
            throw .providerUnavailable(provider: name, reason: "\(name)'s keys could not be fetched.")
        }
    }

    private static func isHTTPURL(_ raw: String, secure: Bool) -> Bool {
        guard raw.utf8.count <= 2048, let url = URL(string: raw), let scheme = url.scheme?.lowercased(), let host = url.host else { return false }
        return (scheme == "https" || (scheme == "http" && !secure)) && !host.isEmpty
    }

    /// A transport failure in a few words (a timeout says so; nothing of the request).
    private static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.localizedCaseInsensitiveContains("timeout") || text.localizedCaseInsensitiveContains("deadline") { return "timed out" }
        return "unreachable"
    }
}
