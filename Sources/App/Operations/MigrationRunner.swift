import Fluent
import Vapor

/// Applies and reverts the schema migrations of every feature.
enum MigrationRunner {
    /// Applies every pending migration and returns their names; none pending is not an error.
    @discardableResult
    static func applyPending(on app: Application) async throws -> [String] {
        try await app.migrator.setupIfNeeded().get()
        let pending = try await app.migrator.previewPrepareBatch().get()
        guard !pending.isEmpty else { return [] }
        try await app.migrator.prepareBatch().get()
        return pending.map { $0.0.name }
    }

    /// The migrations not yet applied (creating Fluent's bookkeeping table when it is missing).
    static func pending(on app: Application) async throws -> [String] {
        try await app.migrator.setupIfNeeded().get()
        return try await app.migrator.previewPrepareBatch().get().map { $0.0.name }
    }

    /// The migrations the last batch applied, newest first.
    static func lastBatch(on app: Application) async throws -> [String] {
        try await app.migrator.setupIfNeeded().get()
        return try await app.migrator.previewRevertLastBatch().get().map { $0.0.name }
    }

    static func revertLastBatch(on app: Application) async throws {
        try await app.migrator.revertLastBatch().get()
    }
}

/// `migrate`: applies pending migrations without asking (a release step), or with `--revert`
/// undoes the last batch after confirmation (or `--yes`).
struct MigrateCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Flag(name: "revert", help: "Revert the last batch of migrations instead.")
        var revert: Bool
        @Flag(name: "yes", short: "y", help: "Do not ask for confirmation before reverting.")
        var yes: Bool
        init() {}
    }

    var help: String { "Applies pending database migrations (idempotent), or reverts the last batch with --revert." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        if signature.revert {
            let batch = try await MigrationRunner.lastBatch(on: app)
            guard !batch.isEmpty else { return context.console.print("No migrations to revert.") }
            context.console.print("These migrations will be reverted, and the data they hold deleted:")
            batch.forEach { context.console.print("  - \($0)") }
            guard signature.yes || context.console.confirm("Continue?") else {
                return context.console.warning("Nothing was reverted.")
            }
            try await MigrationRunner.revertLastBatch(on: app)
            context.console.print("Reverted \(batch.count) migration(s).")
        } else {
            let applied = try await MigrationRunner.applyPending(on: app)
            if applied.isEmpty {
                context.console.print("No migrations to apply; the database is up to date.")
            } else {
                applied.forEach { context.console.print("  + \($0)") }
                context.console.print("Applied \(applied.count) migration(s).")
            }
        }
    }
}
