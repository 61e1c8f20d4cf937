import Foundation

/// One OpenID Connect provider people may sign in through: Google (`GOOGLE_*`, fixed endpoints) or
/// any other (`OIDC_PROVIDERS` and `OIDC_<NAME>_*`, endpoints read from its discovery document).
public struct OpenIDProviderSettings: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Google: linked to an account by its proven email, and its proof removes a password set
        /// by someone who never proved the address (see ``OpenIDAccountLinking``).
        case google
        /// Any other provider: linked by email only when its operator allows it.
        case generic
    }

    /// `google`, or the name in `OIDC_PROVIDERS` (lowercase): the routes' `/auth/oidc/<name>/`.
    public var name: String
    public var kind: Kind
    /// What the sign-in button says: "Sign in with <display name>".
    public var displayName: String
    public var clientID: String
    public var clientSecret: String
    /// Where the provider sends the browser back, as registered with it.
    public var redirectURI: String
    /// Asked for at the authorization endpoint (space-separated, `openid` among them).
    public var scopes: String
    /// The issuer whose discovery document is read; nil for Google, whose endpoints are fixed.
    public var issuer: String?
    /// Google's endpoints (or a stand-in's); nil for a provider that is discovered.
    public var endpoints: OpenIDEndpoints?
    /// Email domains allowed to sign in (lowercase); empty for any.
    public var allowedDomains: [String]
    /// Members of any of these groups are staff, re-evaluated at every sign-in; empty to leave
    /// staff status to the admin.
    public var staffGroups: [String]
    /// The ID token's claim that lists the groups.
    public var groupsClaim: String
    /// Whether an identity may join an existing account with the same (verified) email.
    public var linkByEmail: Bool

    /// The routes' base path: `/auth/google/` or `/auth/oidc/<name>/`.
    var basePath: String { kind == .google ? "/auth/google/" : "/auth/oidc/\(name)/" }
    var loginPath: String { basePath + "login/" }

    /// Names in `OIDC_PROVIDERS`: lowercase letters, digits and `_` (they become parts of variable
    /// names and of paths), at most 32.
    static func isValidName(_ name: String) -> Bool {
        (1...32).contains(name.utf8.count) && name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
    }

    /// Every provider configured: Google's first when `GOOGLE_CLIENT_ID` is set, then those of
    /// `OIDC_PROVIDERS` in their order. Redirect URIs default to `publicURL`'s callback routes.
    static func readAll(_ read: SettingsReader, publicURL: String, debug: Bool) throws(SettingsError) -> [OpenIDProviderSettings] {
        var providers: [OpenIDProviderSettings] = []
        if let google = try readGoogle(read, publicURL: publicURL) { providers.append(google) }
        for raw in read.list("OIDC_PROVIDERS", default: []) {
            let name = raw.lowercased()
            guard isValidName(name) else {
                throw SettingsError(key: "OIDC_PROVIDERS", problem: "'\(raw)' is not a name of letters, digits and _ (at most 32)")
            }
            guard name != "google" else {
                throw SettingsError(key: "OIDC_PROVIDERS", problem: "the name google is reserved (configure Google with GOOGLE_CLIENT_ID)")
            }
            guard !providers.contains(where: { $0.name == name }) else {
                throw SettingsError(key: "OIDC_PROVIDERS", problem: "'\(name)' is named twice")
            }
            providers.append(try readGeneric(name, read, publicURL: publicURL, debug: debug))
        }
        return providers
    }

    private static func readGoogle(_ read: SettingsReader, publicURL: String) throws(SettingsError) -> OpenIDProviderSettings? {
        guard let clientID = read.string("GOOGLE_CLIENT_ID") else { return nil }
        guard let clientSecret = read.string("GOOGLE_CLIENT_SECRET") else {
            throw SettingsError(key: "GOOGLE_CLIENT_SECRET", problem: "required when GOOGLE_CLIENT_ID is set")
        }
        return OpenIDProviderSettings(
            name: "google", kind: .google, displayName: "Google", clientID: clientID, clientSecret: clientSecret,
            redirectURI: try read.httpURL("GOOGLE_REDIRECT_URI", default: publicURL + "/auth/google/callback/", keepTrailingSlash: true),
            scopes: "openid email profile", issuer: nil,
            endpoints: OpenIDEndpoints(
                authorization: try read.httpURL("GOOGLE_AUTHORIZATION_ENDPOINT", default: "https://accounts.google.com/o/oauth2/v2/auth", keepTrailingSlash: true),
                token: try read.httpURL("GOOGLE_TOKEN_ENDPOINT", default: "https://oauth2.googleapis.com/token", keepTrailingSlash: true),
                jwks: try read.httpURL("GOOGLE_JWKS_URI", default: "https://www.googleapis.com/oauth2/v3/certs", keepTrailingSlash: true),
                issuers: read.list("GOOGLE_ISSUERS", default: ["https://accounts.google.com", "accounts.google.com"])
            ),
            allowedDomains: read.list("GOOGLE_ALLOWED_DOMAINS", default: []).map { $0.lowercased() },
            staffGroups: [], groupsClaim: "groups", linkByEmail: true
        )
    }

    /// Whether `host` is this machine.
    static func isLoopback(_ host: String) -> Bool {
        ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host.lowercased()) || host.hasPrefix("127.")
    }

    private static func readGeneric(_ name: String, _ read: SettingsReader, publicURL: String,
                                    debug: Bool) throws(SettingsError) -> OpenIDProviderSettings {
        let prefix = "OIDC_\(name.uppercased())_"
        func required(_ suffix: String) throws(SettingsError) -> String {
            guard let value = read.string(prefix + suffix) else {
                throw SettingsError(key: prefix + suffix, problem: "required for the OpenID provider '\(name)' named in OIDC_PROVIDERS")
            }
            return value
        }
        let issuer = try required("ISSUER")
        guard let url = URL(string: issuer), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), let host = url.host,
              url.query == nil, url.fragment == nil
        else { throw SettingsError(key: prefix + "ISSUER", problem: "expected the provider's http(s) issuer URL, got '\(issuer)'") }
        // Over plain HTTP anyone on the way could rewrite the keys and sign in as anybody.
        guard url.scheme?.lowercased() == "https" || debug || isLoopback(host) else {
            throw SettingsError(key: prefix + "ISSUER", problem: "must be https:// (plain http only on this machine, or with DEBUG)")
        }
        let scopes = read.string(prefix + "SCOPES") ?? "openid email profile"
        guard scopes.split(separator: " ").contains("openid") else {
            throw SettingsError(key: prefix + "SCOPES", problem: "must include openid")
        }
        let groupsClaim = read.string(prefix + "GROUPS_CLAIM") ?? "groups"
        return OpenIDProviderSettings(
            name: name, kind: .generic,
            displayName: read.string(prefix + "DISPLAY_NAME") ?? name.prefix(1).uppercased() + name.dropFirst(),
            clientID: try required("CLIENT_ID"), clientSecret: try required("CLIENT_SECRET"),
            redirectURI: try read.httpURL(prefix + "REDIRECT_URI", default: publicURL + "/auth/oidc/\(name)/callback/", keepTrailingSlash: true),
            scopes: scopes, issuer: issuer, endpoints: nil,
            allowedDomains: read.list(prefix + "ALLOWED_DOMAINS", default: []).map { $0.lowercased() },
            staffGroups: read.list(prefix + "STAFF_GROUPS", default: []),
            groupsClaim: groupsClaim, linkByEmail: try read.bool(prefix + "LINK_BY_EMAIL", default: false)
        )
    }
}

/// Where a provider authorizes, exchanges codes and publishes its keys, and the `iss` values its
/// ID tokens may carry.
public struct OpenIDEndpoints: Sendable, Equatable {
    public var authorization: String
    public var token: String
    public var jwks: String
    public var issuers: [String]
}
