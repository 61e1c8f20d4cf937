import Vapor

/// `serve` (the default): applies pending migrations unless `--no-migrate` or `AUTO_MIGRATE=false`,
/// then runs Vapor's HTTP server with the same `--hostname`/`--port`/`--bind`/`--unix-socket` options.
struct ServeCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "hostname", short: "H", help: "The address to listen on (default: HOST, or 0.0.0.0).")
        var hostname: String?
        @Option(name: "port", short: "p", help: "The port to listen on (default: PORT, or 8000).")
        var port: Int?
        @Option(name: "bind", short: "b", help: "hostname:port together.")
        var bind: String?
        @Option(name: "unix-socket", help: "Listen on this unix domain socket instead.")
        var socketPath: String?
        @Flag(name: "no-migrate", help: "Do not apply pending migrations at start-up.")
        var noMigrate: Bool
        init() {}
    }

    let autoMigrate: Bool

    var help: String { "Runs the HTTP server, applying pending migrations first." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        if autoMigrate && !signature.noMigrate {
            let applied = try await MigrationRunner.applyPending(on: app)
            app.logger.notice(applied.isEmpty ? "database is up to date" : "applied \(applied.count) migration(s): \(applied.joined(separator: ", "))")
        }
        try await app.serverStartup.run(app)

        var arguments = [context.input.executable]
        if let hostname = signature.hostname { arguments += ["--hostname", hostname] }
        if let port = signature.port { arguments += ["--port", String(port)] }
        if let bind = signature.bind { arguments += ["--bind", bind] }
        if let socketPath = signature.socketPath { arguments += ["--unix-socket", socketPath] }
        var serveContext = context
        serveContext.input = CommandInput(arguments: arguments)
        try await app.servers.asyncCommand.run(using: &serveContext)
    }
}
