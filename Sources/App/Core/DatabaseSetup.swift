import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import SQLKit
import Vapor

/// Connects Fluent to the database `DATABASE_URL` names.
enum DatabaseSetup {
    static func configure(_ app: Application, _ settings: DatabaseSettings) throws {
        switch settings.location {
        case .sqliteFile(let path):
            app.databases.use(.sqlite(.file(path), sqlLogLevel: .trace), as: .sqlite)
        case .sqliteMemory:
            app.databases.use(.sqlite(.memory, sqlLogLevel: .trace), as: .sqlite)
        case .postgres(let url):
            var configuration = try SQLPostgresConfiguration(url: url)
            configuration.searchPath = settings.searchPath
            let loops = max(1, app.eventLoopGroup.makeIterator().reduce(0) { count, _ in count + 1 })
            let perLoop = max(1, (settings.poolSize + loops - 1) / loops)
            app.databases.use(
                .postgres(configuration: configuration, maxConnectionsPerEventLoop: perLoop,
                          connectionPoolTimeout: .seconds(10), sqlLogLevel: .trace),
                as: .psql
            )
        }
    }

    /// Settings that make the embedded database fast and safe for a server: write-ahead logging
    /// lets readers and a writer work at once. (The file remembers it; running it again is harmless.)
    static func prepare(_ app: Application, _ settings: DatabaseSettings) async throws {
        guard case .sqliteFile = settings.location, let sql = app.db as? any SQLDatabase else { return }
        try await sql.raw("PRAGMA journal_mode=WAL").run()
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
}
