import Foundation

/// Where the data lives: `DATABASE_URL` and the PostgreSQL pool size.
public struct DatabaseSettings: Sendable, Equatable {
    public enum Location: Sendable, Equatable {
        /// An SQLite file; the embedded default.
        case sqliteFile(path: String)
        /// A private in-memory SQLite database (`sqlite://:memory:`), gone when the process ends.
        case sqliteMemory
        /// A PostgreSQL server, reached through the URL as given (`postgres://` or `postgresql://`).
        case postgres(url: String)
    }

    public var location: Location
    /// The most connections this process opens to PostgreSQL, over all its event loops.
    public var poolSize: Int
    /// PostgreSQL schemas to use instead of the server's default (`DATABASE_SCHEMA`; the tests give
    /// each run its own).
    public var searchPath: [String]?
    /// A direct connection for the event bus's `LISTEN/NOTIFY` when `DATABASE_URL` goes through a
    /// pooler that cannot hold them (PgBouncer in transaction mode); nil: `DATABASE_URL`.
    public var listenURL: String?

    public init(location: Location, poolSize: Int = 10, searchPath: [String]? = nil, listenURL: String? = nil) {
        self.location = location
        self.poolSize = poolSize
        self.searchPath = searchPath
        self.listenURL = listenURL
    }

    public var isSQLite: Bool { kind == .sqlite }

    static let validSSLModes: Set<String> = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// Parses `sqlite://PATH`, `sqlite://:memory:` or `postgres[ql]://user:password@host:port/name?sslmode=...`.
    static func parseLocation(_ raw: String, key: String) throws(SettingsError) -> Location {
        if raw.hasPrefix("sqlite://") {
            let path = String(raw.dropFirst("sqlite://".count))
            if path == ":memory:" { return .sqliteMemory }
            guard !path.isEmpty else {
                throw SettingsError(key: key, problem: "sqlite:// needs a file path, e.g. sqlite://db.sqlite3 or sqlite:///var/lib/chat-server/db.sqlite3")
            }
            return .sqliteFile(path: path)
        }
        guard let components = URLComponents(string: raw), let scheme = components.scheme?.lowercased() else {
            throw SettingsError(key: key, problem: "not a URL; expected sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/NAME")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw SettingsError(key: key, problem: "unsupported scheme '\(scheme)'; use sqlite:// or postgres://")
        }
        guard let host = components.host, !host.isEmpty else {
            throw SettingsError(key: key, problem: "the PostgreSQL URL has no host")
        }
        guard let user = components.user, !user.isEmpty else {
            throw SettingsError(key: key, problem: "the PostgreSQL URL has no user name")
        }
        guard components.path.count > 1 else {
            throw SettingsError(key: key, problem: "the PostgreSQL URL has no database name")
        }
        for item in components.queryItems ?? [] {
            switch item.name.lowercased() {
            case "sslmode":
                guard let mode = item.value, validSSLModes.contains(mode) else {
                    throw SettingsError(key: key, problem: "sslmode must be one of \(validSSLModes.sorted().joined(separator: ", "))")
                }
            default:
                throw SettingsError(key: key, problem: "unsupported URL parameter '\(item.name)' (only sslmode is understood)")
            }
        }
        return .postgres(url: raw)
    }
}
