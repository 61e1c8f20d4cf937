import AnthropicEmulator
@testable import App
import Fluent
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import Providers
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

    func set(_ date: Date) {
        current.withLockedValue { $0 = date }
    }
}

/// A configured, migrated application on a database of its own, with the clock it runs on and,
/// when asked for, the Anthropic emulator its replies come from.
struct TestApp {
    let app: Application
    let clock: TestClock
    let settings: Settings
    let emulator: AnthropicEmulator?
    /// The API the application reaches the emulator through.
    let api: UpstreamAPI
    let sleeps: RecordedSleeps
    /// The clock the model provider's timeouts run on: it moves only when a test moves it.
    let providerClock: ManualClock

    var db: any Database { app.db }
    var services: AppServices {
        get throws { try #require(app.services) }
    }
}

/// The API a test's model provider speaks. The emulator answers both from the same scripts, so a
/// test of replies runs unchanged on each: on Anthropic's Messages API (the models configured by
/// `ANTHROPIC_*`) or on the OpenAI Chat Completions API (the provider `openai`).
enum UpstreamAPI: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case anthropic, openai

    var testDescription: String { self == .anthropic ? "Anthropic" : "OpenAI-compatible" }

    /// The ids of the models the application offers, the default first.
    var models: [String] {
        switch self {
        case .anthropic: ["claude-sonnet-5-5", "claude-haiku-5"]
        case .openai: ["openai/gpt-emu", "openai/gpt-emu-mini"]
        }
    }

    var defaultModel: String { models[0] }

    /// The name the provider is asked for when a chat uses the model `id`.
    func upstreamName(of id: String) -> String {
        self == .openai ? String(id.dropFirst("openai/".count)) : id
    }

    /// The settings that point the application at `emulator` through this API.
    func settings(for emulator: AnthropicEmulator) -> [String: String] {
        switch self {
        case .anthropic:
            ["ANTHROPIC_API_KEY": emulator.apiKey, "ANTHROPIC_BASE_URL": emulator.baseURL,
             "ANTHROPIC_MODELS": models.joined(separator: ",")]
        case .openai:
            ["OPENAI_API_KEY": emulator.apiKey, "OPENAI_BASE_URL": emulator.baseURL + "/v1",
             "OPENAI_MODELS": models.map(upstreamName(of:)).joined(separator: ","), "DEFAULT_MODEL": defaultModel]
        }
    }
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
            // Tests of other things send many requests from one client; the limits have their own tests.
            "RATE_LIMIT_USER": "100000/minute",
            "RATE_LIMIT_ANONYMOUS": "100000/minute",
            "RATE_LIMIT_AUTH": "100000/minute",
            "RATE_LIMIT_LOGIN_ACCOUNT": "100000/minute",
            "RATE_LIMIT_LOGIN_FAILURES": "100000/minute",
            "RATE_LIMIT_ADMIN_LOGIN_FAILURES": "100000/minute",
            "RATE_LIMIT_ADMIN_LOGIN_ACCOUNT": "100000/minute",
            "RATE_LIMIT_REPLIES": "100000/minute",
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
/// its own database (an SQLite file of its own, or a new PostgreSQL schema; either dropped
/// afterwards), migrated.
func withTestApp(
    _ database: TestDatabase,
    settings overrides: [String: String] = [:],
    emulated: Bool = false,
    api: UpstreamAPI = .anthropic,
    blockingThreads: NIOThreadPool? = nil,
    logger: Logger? = nil,
    _ body: (TestApp) async throws -> Void
) async throws {
    await appSlots.wait()
    do {
        // SQLite on a file, as a server runs it (write-ahead log, a busy timeout): in memory, its shared
        // cache refuses a second writer at once ("database is locked") instead of making it wait, and
        // a test whose reply saves while a request writes failed now and then.
        if case .sqlite = database, overrides["DATABASE_URL"] == nil {
            try await database.onFile { file in try await runTestApp(database, overrides.merging(file) { $1 }, emulated, api, blockingThreads, logger, body) }
        } else {
            try await runTestApp(database, overrides, emulated, api, blockingThreads, logger, body)
        }
    } catch {
        await appSlots.signal()
        throw error
    }
    await appSlots.signal()
}

private func runTestApp(
    _ database: TestDatabase,
    _ overrides: [String: String],
    _ emulated: Bool,
    _ api: UpstreamAPI,
    _ blockingThreads: NIOThreadPool?,
    _ logger: Logger?,
    _ body: (TestApp) async throws -> Void
) async throws {
    let emulator = emulated ? try await AnthropicEmulator.start() : nil
    let schema: String? = if case .postgres = database { newTestSchema() } else { nil }
    var instance: TestApp?
    do {
        let t = try await startInstance(database, overrides, emulator: emulator, api: api, schema: schema, migrate: true,
                                        blockingThreads: blockingThreads, logger: logger)
        instance = t
        try await body(t)
    } catch {
        await tearDown(instance?.app, schema: schema, emulator: emulator)
        throw error
    }
    await tearDown(instance?.app, schema: schema, emulator: emulator)
}

/// A schema of its own for a PostgreSQL test.
func newTestSchema() -> String {
    "test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
}

/// Configures and starts one application (an instance of the server) on `schema` (PostgreSQL) —
/// creating and migrating it when `migrate` — with the emulator's settings when there is one, and
/// `blockingThreads` (which it then owns) as its blocking pool in place of the process's, and
/// `logger` as its logger from the start (what configuring it logs included).
func startInstance(
    _ database: TestDatabase, _ overrides: [String: String], emulator: AnthropicEmulator?, api: UpstreamAPI = .anthropic,
    schema: String?, migrate: Bool, blockingThreads: NIOThreadPool? = nil, logger: Logger? = nil
) async throws -> TestApp {
    var environment = TestSettings.environment(database)
    if let emulator { environment.merge(api.settings(for: emulator)) { $1 } }
    environment.merge(overrides) { $1 }
    var settings = try Settings(environment: environment)
    settings.database.searchPath = schema.map { [$0] }

    let app = try await Application.make(.testing)
    if let blockingThreads { app.threadPool = blockingThreads }
    if let logger { app.logger = logger }
    let clock = TestClock()
    let sleeps = RecordedSleeps()
    let providerClock = ManualClock()
    do {
        try await configure(app, settings: settings, dependencies: AppDependencies(
            clock: clock, sleep: sleeps.sleep, providerClock: providerClock
        ))
        if migrate {
            if let schema { try await app.db.sql().raw("CREATE SCHEMA \(ident: schema)").run() }
            try await app.autoMigrate()
        }
        try await app.serverStartup.run(app)
    } catch {
        try? await app.asyncShutdown()
        throw error
    }
    return TestApp(app: app, clock: clock, settings: settings, emulator: emulator, api: api, sleeps: sleeps,
                   providerClock: providerClock)
}

func tearDown(_ app: Application?, schema: String?, emulator: AnthropicEmulator?) async {
    // Let the emulator's paused and hanging replies go, so that replies in flight end.
    emulator?.openGate()
    if let app, !app.didShutdown {
        await app.services?.chat.runner.drain(timeout: .zero)
        if let schema { try? await app.db.sql().raw("DROP SCHEMA IF EXISTS \(ident: schema) CASCADE").run() }
        try? await app.asyncShutdown()
    }
    await emulator?.shutdown()
}

/// Waits until `condition` holds, looking every few milliseconds; records an issue naming `what` and
/// throws when it does not hold within `timeout`.
func waitUntil(_ what: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
               _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(5))
    }
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
