import App
import Fluent
import Foundation
import NIOConcurrencyHelpers
import SQLKit
import Testing
import VaporTesting

/// A clock the tests move by hand.
final class TestClock: WallClock {
    private let current: NIOLockedValueBox<Date>

    init(_ start: Date = Date()) { current = .init(start) }

    func now() -> Date { current.withLockedValue { $0 } }

    func advance(by seconds: TimeInterval) {
        current.withLockedValue { $0 = $0.addingTimeInterval(seconds) }
    }
}

/// A configured, migrated application on a database of its own, with the clock it runs on.
struct TestApp {
    let app: Application
    let clock: TestClock
    let settings: Settings

    var db: any Database { app.db }
}

enum TestSettings {
    static let secretKey = "test-secret-key-0123456789abcdef0123456789abcdef"

    /// Production-like settings (DEBUG off) that are fast to test with.
    static func environment(_ database: TestDatabase) -> [String: String] {
        var environment = [
            "SECRET_KEY": secretKey,
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "BCRYPT_COST": "4",
            "DATABASE_POOL_SIZE": "2",
            "LOG_LEVEL": "warning",
            "AUTO_MIGRATE": "true",
        ]
        switch database {
        case .sqlite: environment["DATABASE_URL"] = "sqlite://:memory:"
        case .postgres(let url): environment["DATABASE_URL"] = url
        }
        return environment
    }
}

/// At most this many test applications exist at once, so parallel tests cannot exhaust
/// PostgreSQL's connections or the machine's memory.
private let appSlots = AsyncSemaphore(limit: 6)

/// Runs `body` against a fresh application: configured with test settings (plus `settings`),
/// its own database (in-memory SQLite, or a new PostgreSQL schema dropped afterwards), migrated.
func withTestApp(
    _ database: TestDatabase,
    settings overrides: [String: String] = [:],
    _ body: (TestApp) async throws -> Void
) async throws {
    await appSlots.wait()
    do {
        try await runTestApp(database, overrides, body)
    } catch {
        await appSlots.signal()
        throw error
    }
    await appSlots.signal()
}

private func runTestApp(
    _ database: TestDatabase,
    _ overrides: [String: String],
    _ body: (TestApp) async throws -> Void
) async throws {
    var environment = TestSettings.environment(database)
    environment.merge(overrides) { $1 }
    var settings = try Settings(environment: environment)
    var schema: String?
    if case .postgres = database {
        schema = "test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        settings.database.searchPath = schema.map { [$0] }
    }

    let app = try await Application.make(.testing)
    let clock = TestClock()
    do {
        try await configure(app, settings: settings, dependencies: AppDependencies(clock: clock))
        if let schema, let sql = app.db as? any SQLDatabase {
            try await sql.raw("CREATE SCHEMA \(ident: schema)").run()
        }
        try await app.autoMigrate()
        try await body(TestApp(app: app, clock: clock, settings: settings))
    } catch {
        await tearDown(app, schema: schema)
        throw error
    }
    await tearDown(app, schema: schema)
}

private func tearDown(_ app: Application, schema: String?) async {
    if let schema, let sql = app.db as? any SQLDatabase {
        try? await sql.raw("DROP SCHEMA IF EXISTS \(ident: schema) CASCADE").run()
    }
    try? await app.asyncShutdown()
}

/// A counting semaphore for async code.
actor AsyncSemaphore {
    private var available: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { available = limit }

    func wait() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func signal() {
        if waiters.isEmpty {
            available += 1
        } else {
            waiters.removeFirst().resume()
        }
    }
}
