import NIOConcurrencyHelpers
import Vapor

/// Work that runs once the database is migrated, just before the server takes requests (the
/// `serve` command runs it; other commands do not).
public final class ServerStartup: Sendable {
    public typealias Step = @Sendable (Application) async throws -> Void
    private let steps = NIOLockedValueBox<[Step]>([])

    func add(_ step: @escaping Step) {
        steps.withLockedValue { $0.append(step) }
    }

    public func run(_ app: Application) async throws {
        for step in steps.withLockedValue({ $0 }) { try await step(app) }
    }
}

extension Application {
    private struct ServerStartupKey: StorageKey {
        typealias Value = ServerStartup
    }

    public var serverStartup: ServerStartup {
        if let existing = storage[ServerStartupKey.self] { return existing }
        let startup = ServerStartup()
        storage[ServerStartupKey.self] = startup
        return startup
    }
}
