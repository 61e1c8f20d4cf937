import Foundation
import Logging

/// Everything the service takes from its environment, read and checked once at start-up.
///
/// This is the only place that reads environment variables. Values come from the process
/// environment, then `.env`, then `.env.<environment>` (the first one that sets a key wins).
public struct Settings: Sendable {
    public var secretKey: String
    /// Where the secret key came from, so start-up can say so.
    public var secretKeySource: SecretKeySource
    public var debug: Bool
    public var allowedHosts: [String]
    public var database: DatabaseSettings
    public var autoMigrate: Bool
    public var host: String
    public var port: Int
    /// The separate frontend, where an OpenID sign-in returns when not told where; nil when there is
    /// none (production without `FRONTEND_URL`), and sign-ins return to this server's web chat.
    public var frontendURL: String?
    /// Browser origins allowed to call the API; empty for none (production without `CORS_ALLOWED_ORIGINS`).
    public var corsAllowedOrigins: [String]
    /// How long an access token is valid.
    public var accessTokenLifetime: Duration
    /// How long a refresh token is valid.
    public var refreshTokenLifetime: Duration
    public var logLevel: Logger.Level
    /// The largest request body accepted, in bytes.
    public var maxBodySize: Int
    /// The largest body of `POST /v1/chat/completions` (images come inline, as data URLs).
    public var v1MaxBodySize: Int
    /// `PUBLIC_URL`: the server's address as users reach it, without a trailing slash; absolute
    /// URLs the server hands out (share links) start with it.
    public var publicURL: String
    /// `SHARE_LINKS`: who may open share links.
    var shareLinks: ShareLinks
    /// The bcrypt work factor for new password hashes.
    public var bcryptCost: Int
    /// How long an admin sign-in lasts.
    public var adminSessionLifetime: Duration
    /// The OpenID providers people may sign in through (Google's first); empty for none.
    public var openID: [OpenIDProviderSettings]
    /// `SIGNUP`: whether anyone may make an account at `POST /auth/register/` (else accounts come
    /// from OpenID providers, the admin or `createsuperuser`).
    public var signupOpen: Bool
    /// `PASSWORD_LOGIN`: whether people sign in with a password; false only with an OpenID provider.
    public var passwordLogin: Bool
    public var protection: ProtectionSettings
    /// The model providers and their models.
    public var models: ModelSettings
    public var chat: ChatSettings
    public var usage: UsageSettings
    /// Attachments: their limits and where their bytes live.
    public var files: FileSettings
    /// MCP servers and how tool calls are bounded.
    public var tools: ToolSettings
    /// OpenTelemetry traces, sent where `OTEL_EXPORTER_OTLP_ENDPOINT` says; nil: none.
    public var tracing: TracingSettings?
    /// Used by `createsuperuser --noinput`.
    public var superuserEmail: String?
    public var superuserPassword: String?

    public enum SecretKeySource: Sendable, Equatable {
        case environment
        /// Generated for development and kept in this file so tokens survive a restart.
        case developmentFile(path: String, created: Bool)
        /// Generated for an in-memory development database; lives as long as the process.
        case ephemeral
    }

    public static let defaultCORSOrigin = "http://localhost:5173"

    /// The origin of `FRONTEND_URL` (scheme, host and port).
    public var frontendOrigin: String? {
        guard let frontendURL, let url = URL(string: frontendURL), let scheme = url.scheme, let host = url.host else { return frontendURL }
        return "\(scheme.lowercased())://\(host.lowercased())" + (url.port.map { ":\($0)" } ?? "")
    }

    /// Origins an OpenID sign-in may return to besides this server: the frontend's and the CORS origins.
    var signInReturnOrigins: Set<String> {
        Set(corsAllowedOrigins + (frontendOrigin.map { [$0] } ?? []))
    }

    /// Where an OpenID sign-in returns when it was not told: `FRONTEND_URL`, or this server's web chat.
    func defaultSignInReturn() throws(SettingsError) -> RedirectTarget {
        guard let target = RedirectTarget(frontendURL ?? "/", allowedOrigins: signInReturnOrigins) else {
            throw SettingsError(key: "FRONTEND_URL", problem: "must be a plain http(s) URL without user name or fragment")
        }
        return target
    }

    /// Reads the settings from the process environment and the `.env` files in the working directory.
    public static func load(
        environmentName: String,
        directory: String = FileManager.default.currentDirectoryPath,
        processEnvironment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Settings {
        var values = try DotEnv.load(path: directory + "/.env.\(environmentName)")
        values.merge(try DotEnv.load(path: directory + "/.env")) { $1 }
        values.merge(processEnvironment) { $1 }
        return try Settings(environment: values)
    }

    /// Builds the settings from raw `KEY=value` pairs; throws a ``SettingsError`` naming the first bad key.
    public init(environment values: [String: String]) throws(SettingsError) {
        let read = SettingsReader(values: values)
        debug = try read.bool("DEBUG", default: false)
        database = DatabaseSettings(
            location: try DatabaseSettings.parseLocation(read.string("DATABASE_URL") ?? "sqlite://db.sqlite3", key: "DATABASE_URL"),
            poolSize: try read.int("DATABASE_POOL_SIZE", default: 10, in: 1...1000),
            searchPath: try read.string("DATABASE_SCHEMA").map { schema throws(SettingsError) in
                guard schema.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), schema.count <= 63 else {
                    throw SettingsError(key: "DATABASE_SCHEMA", problem: "expected a schema name of letters, digits and _, got '\(schema)'")
                }
                return [schema]
            },
            listenURL: try read.string("DATABASE_LISTEN_URL").map { raw throws(SettingsError) in
                guard case .postgres(let url) = try DatabaseSettings.parseLocation(raw, key: "DATABASE_LISTEN_URL") else {
                    throw SettingsError(key: "DATABASE_LISTEN_URL", problem: "expected a postgres:// URL")
                }
                return url
            }
        )
        autoMigrate = try read.bool("AUTO_MIGRATE", default: true)
        // Reachable from this machine only unless told otherwise (the container and the systemd unit say 0.0.0.0).
        host = read.string("HOST") ?? "127.0.0.1"
        port = try read.int("PORT", default: 8000, in: 0...65535)

        allowedHosts = read.list("ALLOWED_HOSTS", default: [])
        if allowedHosts.isEmpty {
            guard debug else {
                throw SettingsError(key: "ALLOWED_HOSTS", problem: "required when DEBUG is false: the host names this server answers to, comma-separated (e.g. chat.example.com)")
            }
            allowedHosts = ["localhost", "127.0.0.1", "[::1]"]
        }

        // Development assumes the original's separate frontend on localhost:5173; production trusts
        // no other origin until it is named.
        if debug || read.string("FRONTEND_URL") != nil {
            frontendURL = try read.httpURL("FRONTEND_URL", default: Self.defaultCORSOrigin)
        } else {
            frontendURL = nil
        }
        var origins: [String] = []
        for raw in read.list("CORS_ALLOWED_ORIGINS", default: debug ? [Self.defaultCORSOrigin] : []) {
            origins.append(try read.origin(raw, key: "CORS_ALLOWED_ORIGINS"))
        }
        corsAllowedOrigins = origins

        accessTokenLifetime = try read.duration("ACCESS_TOKEN_LIFETIME", default: .seconds(15 * 60))
        refreshTokenLifetime = try read.duration("REFRESH_TOKEN_LIFETIME", default: .seconds(7 * 86_400))
        guard refreshTokenLifetime > accessTokenLifetime else {
            throw SettingsError(key: "REFRESH_TOKEN_LIFETIME", problem: "must be longer than ACCESS_TOKEN_LIFETIME")
        }
        logLevel = try read.logLevel("LOG_LEVEL", default: .info)
        maxBodySize = try read.byteCount("MAX_BODY_SIZE", default: 1 << 20)
        v1MaxBodySize = try read.byteCount("V1_MAX_BODY_SIZE", default: 20 << 20)
        publicURL = try read.httpURL("PUBLIC_URL", default: "http://localhost:\(port)")
        let shares = read.string("SHARE_LINKS")?.lowercased() ?? "users"
        guard let shareLinks = ShareLinks(rawValue: shares) else {
            throw SettingsError(key: "SHARE_LINKS", problem: "expected users, public or off, got '\(shares)'")
        }
        self.shareLinks = shareLinks
        bcryptCost = try read.int("BCRYPT_COST", default: 12, in: 4...31)
        adminSessionLifetime = try read.duration("ADMIN_SESSION_LIFETIME", default: .seconds(12 * 3600))
        protection = try ProtectionSettings(read, debug: debug)
        openID = try OpenIDProviderSettings.readAll(read, publicURL: publicURL, debug: debug)
        let signup = read.string("SIGNUP")?.lowercased() ?? "open"
        guard signup == "open" || signup == "closed" else {
            throw SettingsError(key: "SIGNUP", problem: "expected open or closed, got '\(signup)'")
        }
        signupOpen = signup == "open"
        passwordLogin = try read.bool("PASSWORD_LOGIN", default: true)
        if !passwordLogin, openID.isEmpty {
            throw SettingsError(key: "PASSWORD_LOGIN", problem: "false needs an OpenID provider (GOOGLE_CLIENT_ID or OIDC_PROVIDERS) to sign in through")
        }
        models = try ModelSettings(read, port: port, publicURL: publicURL)
        chat = try ChatSettings(read)
        usage = try UsageSettings(read)
        files = try FileSettings(read)
        tools = try ToolSettings(read)
        tracing = try TracingSettings.read(read)
        superuserEmail = read.string("CHAT_SUPERUSER_EMAIL")
        superuserPassword = values["CHAT_SUPERUSER_PASSWORD"]

        if let key = read.string("SECRET_KEY") {
            guard key.utf8.count >= 32 else {
                throw SettingsError(key: "SECRET_KEY", problem: "must be at least 32 characters; generate one with `openssl rand -hex 32`")
            }
            secretKey = key
            secretKeySource = .environment
        } else if debug {
            (secretKey, secretKeySource) = try DevelopmentSecretKey.loadOrCreate(for: database.location)
        } else {
            throw SettingsError(key: "SECRET_KEY", problem: "required when DEBUG is false; generate one with `openssl rand -hex 32`")
        }
        _ = try defaultSignInReturn()
        if protection.rateLimitStore == .postgres, database.isSQLite {
            throw SettingsError(key: "RATE_LIMIT_STORE", problem: "postgres needs a PostgreSQL DATABASE_URL")
        }
        if chat.eventBus == .postgres, database.isSQLite {
            throw SettingsError(key: "EVENT_BUS", problem: "postgres needs a PostgreSQL DATABASE_URL")
        }
        if chat.eventBus != .local, !database.isSQLite {
            _ = try BusChannels(schema: database.searchPath?.first)
        }
    }
}
