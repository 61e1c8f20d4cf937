import Fluent
import Leaf
import NIOCore
import Providers
import Vapor

/// The composition root: settings → database → services → routes → middleware → commands.
/// The only place concrete types are wired together.
public func configure(_ app: Application, settings: Settings, dependencies: AppDependencies = .init()) async throws {
    app.logger.logLevel = settings.logLevel
    app.http.server.configuration.hostname = settings.host
    app.http.server.configuration.port = settings.port
    app.routes.defaultMaxBodySize = ByteCount(value: settings.maxBodySize)
    JSONCoding.configure()

    try DatabaseSetup.configure(app, settings.database)
    let kind = settings.database.kind
    app.migrations.add(Accounts.migrations)
    app.migrations.add(ChatFeature.migrations(kind))
    app.migrations.add(Usage.migrations(kind))
    app.migrations.add(Files.migrations(kind))
    app.migrations.add(CreateRateLimitBuckets(kind: kind))
    app.migrations.add(CreateShares())
    app.views.use(.leaf)

    let services = try await AppServices.make(app, settings: settings, dependencies: dependencies)
    app.services = services
    // First, so that it stops last: the spans of replies drained at shutdown are sent.
    if let telemetry = services.telemetry { app.lifecycle.use(telemetry) }
    app.lifecycle.use(services.chat.background)
    app.lifecycle.use(OwnedTasksShutdown(tasks: services.keys.writes))
    app.lifecycle.use(OwnedTasksShutdown(tasks: services.signInDiscovery))
    app.lifecycle.use(OwnedTasksShutdown(tasks: services.completions.tasks, grace: settings.chat.drainTimeout))
    app.serverStartup.add { app in try await DatabaseSetup.prepare(app, settings.database) }
    app.serverStartup.add { app in await services.chat.background.start(logger: app.logger) }
    app.serverStartup.add { _ in services.telemetry?.start() }
    // Each OpenID provider's discovery document is read at once, without holding up start-up.
    app.serverStartup.add { app in services.signInDiscovery.run { [logger = app.logger] in await services.signIns.discoverAll(logger: logger) } }
    try routes(app, services)

    // Outermost first: every response is logged and carries the security and CORS headers; every
    // API response carries the rate-limit headers, and every error inside becomes problem+json.
    let protection = settings.protection
    let problems = ErrorProblems(showInternalErrors: settings.debug)
    var edge: [any AsyncMiddleware] = [
        RequestLogMiddleware(metrics: services.metrics, addresses: services.addresses),
        // `/v1/*` answers every error, these layers' own included, in OpenAI's format.
        OpenAIErrorMiddleware(problems: problems),
        SecurityHeadersMiddleware(addresses: services.addresses, sslRedirect: protection.sslRedirect, hstsSeconds: protection.hstsSeconds,
                                  allowedHosts: settings.debug ? nil : AllowedHosts(settings.allowedHosts)),
        CORSPolicyMiddleware(allowedOrigins: settings.corsAllowedOrigins),
        // Static files (the web chat, the admin's stylesheet) are served before the limits: a page
        // load is a dozen of them, and they carry no data.
        StaticFilesMiddleware(directory: app.directory.publicDirectory),
        RateLimitMiddleware(limiter: services.limiter, signer: services.tokens, keys: services.keys,
                            userLimit: protection.userLimit, anonymousLimit: protection.anonymousLimit, problems: problems),
        ProblemMiddleware(routes: RouteMethodIndex(routes: app.routes.all), problems: problems),
    ]
    if let telemetry = services.telemetry {
        edge.insert(RequestTracingMiddleware(tracer: telemetry.tracer), at: 0)
    }
    if !settings.debug {
        edge.append(AllowedHostsMiddleware(hosts: AllowedHosts(settings.allowedHosts)))
    }
    let uploads = FilesController.uploadTimeout(settings.files)
    edge.append(RequestTimeoutMiddleware(timeout: protection.requestTimeout, longer: { uploads($0) ?? V1Controller.timeout($0) }))
    app.middleware = Middlewares()
    app.middleware.use(MiddlewareGroup(edge))
    app.http.server.configuration.idleTimeout = TimeAmount(protection.idleTimeout)
    app.http.server.configuration.reportMetrics = false
    // Nothing is compressed (the compressor Vapor adds to every connection regardless then holds no
    // 1 KB buffer of its own: an open event stream costs that much less).
    app.http.server.configuration.responseCompression = .disabled(initialByteBufferCapacity: 0, allowedTypes: .none,
                                                                  allowRequestOverrides: false)

    app.asyncCommands.use(ServeCommand(autoMigrate: settings.autoMigrate), as: "serve", isDefault: true)
    app.asyncCommands.use(MigrateCommand(), as: "migrate")
    app.asyncCommands.use(
        CreateSuperuserCommand(accounts: services.accounts, autoMigrate: settings.autoMigrate,
                               environmentEmail: settings.superuserEmail, environmentPassword: settings.superuserPassword),
        as: "createsuperuser"
    )
    app.asyncCommands.use(CleanupCommand(clock: services.clock, chats: services.chat.service), as: "cleanup")
    app.asyncCommands.use(BackupCommand(database: settings.database, files: settings.files.storage, clock: services.clock), as: "backup")
    app.asyncCommands.use(CheckCommand(settings: settings), as: "check")

    logStartup(app, settings, services)
}

private func logStartup(_ app: Application, _ settings: Settings, _ services: AppServices) {
    app.logger.info("database: \(DatabaseSetup.describe(settings.database)); DEBUG \(settings.debug ? "on" : "off")")
    app.logger.info("\(services.chat.catalog.summary)")
    app.logger.info("\(services.signIns.summary)")
    switch settings.secretKeySource {
    case .environment:
        break
    case .developmentFile(let path, let created):
        app.logger.notice("SECRET_KEY is not set: \(created ? "generated a development key in" : "using the development key in") \(path)")
    case .ephemeral:
        app.logger.notice("SECRET_KEY is not set: using a random key for this process; tokens end with it")
    }
}
