import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import SQLKit
import Vapor

/// Looks up the application's database; throws ``DatabaseClosed`` once it is closed.
typealias DatabaseAccess = @Sendable () throws -> any Database

/// The database was asked for after the application closed it.
struct DatabaseClosed: Error, CustomStringConvertible {
    var description: String { "the database is closed (the server is shutting down)" }
}

/// Connects Fluent to the database `DATABASE_URL` names.
public enum DatabaseSetup {
    static func configure(_ app: Application, _ settings: DatabaseSettings) throws {
        // The drivers keep their connections per event loop: SQLite one on each, PostgreSQL a share of the pool.
        let loops = max(1, app.eventLoopGroup.makeIterator().reduce(0) { count, _ in count + 1 })
        switch settings.location {
        case .sqliteFile(let path):
            app.databases.use(SQLiteThreads.own(.sqlite(.file(path), sqlLogLevel: .trace), connections: loops, app), as: .sqlite)
        case .sqliteMemory:
            app.databases.use(SQLiteThreads.own(.sqlite(.memory, sqlLogLevel: .trace), connections: loops, app), as: .sqlite)
        case .postgres(let url):
            var configuration = try SQLPostgresConfiguration(url: url)
            configuration.searchPath = settings.searchPath
            let perLoop = max(1, (settings.poolSize + loops - 1) / loops)
            app.databases.use(
                .postgres(configuration: configuration, maxConnectionsPerEventLoop: perLoop,
                          connectionPoolTimeout: .seconds(10), sqlLogLevel: .trace),
                as: .psql
            )
        }
    }

    /// Settings that make the embedded database fast and safe for a server. Write-ahead logging
    /// lets readers and a writer work at once, and with it `synchronous=NORMAL` is safe (the file
    /// remembers the journal mode). `busy_timeout` replaces SQLiteNIO's busy handler, which retries
    /// at once without sleeping and so spins a core whenever two connections contend for the lock.
    /// The driver keeps one connection per event loop for the life of the process, so each gets
    /// these per-connection settings here, once.
    static func prepare(_ app: Application, _ settings: DatabaseSettings) async throws {
        guard settings.isSQLite else { return }
        for eventLoop in app.eventLoopGroup.makeIterator() {
            guard let sql = try app.databases.database(logger: app.logger, on: eventLoop)?.sql() else { continue }
            if case .sqliteFile = settings.location {
                try await sql.raw("PRAGMA journal_mode=WAL").run()
                try await sql.raw("PRAGMA synchronous=NORMAL").run()
            }
            try await sql.raw("PRAGMA busy_timeout=5000").run()
        }
    }

    /// The application's database for work that can outlive a request (replies, titles, the event
    /// bus, shared rate limits), looked up at each use. Once the application has closed its databases
    /// (it is shutting down) a lookup throws ``DatabaseClosed``, where Fluent's `app.db` would stop
    /// the process.
    static func access(_ app: Application) -> DatabaseAccess {
        let databases = app.databases, logger = app.logger, eventLoopGroup = app.eventLoopGroup
        return {
            guard let database = databases.database(logger: logger, on: eventLoopGroup.any()) else { throw DatabaseClosed() }
            return database
        }
    }

    /// A human description of where the data is, with any password hidden.
    static func describe(_ settings: DatabaseSettings) -> String {
        switch settings.location {
        case .sqliteFile(let path): return "SQLite at \(path)"
        case .sqliteMemory: return "SQLite in memory"
        case .postgres(let url):
            guard var components = URLComponents(string: url) else { return "PostgreSQL" }
            if components.password != nil { components.password = "***" }
            return "PostgreSQL at \(components.string ?? "?")"
        }
    }

    /// What went wrong, for an operator: PostgreSQL's own message (its errors describe themselves
    /// only as "generic" unless asked), or the error's description.
    public static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return "PostgreSQL: \(message)\(state)"
        }
        if let underlying = error.underlying { return "PostgreSQL \(error.code): \(underlying)" }
        return "PostgreSQL: \(error.code)"
    }
}
