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
