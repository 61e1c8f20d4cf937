import Foundation

/// Google sign-in (OpenID Connect). Off unless `GOOGLE_CLIENT_ID` is set. The endpoints default to
/// Google's and may point at any OpenID provider (or a test double).
public struct GoogleSettings: Sendable {
    public var clientID: String
    public var clientSecret: String
    /// Where Google sends the browser back: this server's `/auth/google/callback/`, as registered with Google.
    public var redirectURI: String
    public var authorizationEndpoint: String
    public var tokenEndpoint: String
    public var jwksURI: String
    /// Accepted `iss` values of ID tokens.
    public var issuers: [String]

    /// Reads the Google settings; nil when `GOOGLE_CLIENT_ID` is not set.
    static func read(_ read: SettingsReader, port: Int) throws(SettingsError) -> GoogleSettings? {
        guard let clientID = read.string("GOOGLE_CLIENT_ID") else { return nil }
        guard let clientSecret = read.string("GOOGLE_CLIENT_SECRET") else {
            throw SettingsError(key: "GOOGLE_CLIENT_SECRET", problem: "required when GOOGLE_CLIENT_ID is set")
        }
        return GoogleSettings(
            clientID: clientID,
            clientSecret: clientSecret,
            redirectURI: try read.httpURL("GOOGLE_REDIRECT_URI", default: "http://localhost:\(port)/auth/google/callback/", keepTrailingSlash: true),
            authorizationEndpoint: try read.httpURL("GOOGLE_AUTHORIZATION_ENDPOINT", default: "https://accounts.google.com/o/oauth2/v2/auth", keepTrailingSlash: true),
            tokenEndpoint: try read.httpURL("GOOGLE_TOKEN_ENDPOINT", default: "https://oauth2.googleapis.com/token", keepTrailingSlash: true),
            jwksURI: try read.httpURL("GOOGLE_JWKS_URI", default: "https://www.googleapis.com/oauth2/v3/certs", keepTrailingSlash: true),
            issuers: read.list("GOOGLE_ISSUERS", default: ["https://accounts.google.com", "accounts.google.com"])
        )
    }
}
