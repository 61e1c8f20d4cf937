import Foundation
import Testing

/// The databases every database-backed test runs on: SQLite always, PostgreSQL when
/// `TEST_DATABASE_URL` is set (otherwise `PostgreSQLAvailabilityTests` shows the skip).
enum TestDatabase: Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres(url: String)

    static var postgresURL: String? {
        guard let url = ProcessInfo.processInfo.environment["TEST_DATABASE_URL"], !url.isEmpty else { return nil }
        return url
    }

    static var all: [TestDatabase] {
        [.sqlite] + (postgresURL.map { [.postgres(url: $0)] } ?? [])
    }

    var testDescription: String {
        switch self {
        case .sqlite: "SQLite"
        case .postgres: "PostgreSQL"
        }
    }
}

extension TestDatabase {
    /// Settings that put an SQLite test on a file of its own, as a server runs it (write-ahead log,
    /// a busy timeout), rather than in memory, whose shared cache refuses concurrent writers at once
    /// instead of making them wait: for tests of concurrent writes. The file goes when `body` ends.
    func onFile<T>(_ body: ([String: String]) async throws -> T) async throws -> T {
        guard case .sqlite = self else { return try await body([:]) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("chat-test-\(UUID().uuidString).sqlite3").path
        defer {
            for suffix in ["", "-wal", "-shm", ".secret-key"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
        return try await body(["DATABASE_URL": "sqlite://" + path])
    }
}
