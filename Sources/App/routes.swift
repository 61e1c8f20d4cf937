import Vapor

/// The whole URL map. Trailing slashes are optional on every route (Vapor ignores empty path segments).
func routes(_ app: Application, _ services: AppServices) throws {
    // Access tokens everywhere; API keys of scope `full` on /api/, of any scope on /v1/, none on /auth/ and /api/keys/.
    let requireUser = AccessTokenMiddleware(signer: services.tokens, users: services.users, keys: services.keys)
    let requireSession = requireUser.taking(.refused)
    let requireAnyKey = requireUser.taking(.anyScope)
    let chat = services.chat

    let protection = services.settings.protection
    let authLimit = RouteRateLimitMiddleware(limiter: services.limiter, policy: protection.authLimit)

    try app.register(collection: HealthController(isDraining: { chat.runner.isDraining }))
    try app.register(collection: MetricsController(metrics: services.metrics, token: services.settings.protection.metricsToken))
    try app.register(collection: APISchemaController.load(resourcesDirectory: app.directory.resourcesDirectory))
    try app.register(collection: AuthController(
        accounts: services.accounts, sessions: services.sessions, requireUser: requireSession, authLimit: authLimit,
        loginThrottle: services.loginThrottle(perKnownClient: protection.loginFailureLimit, perAccount: protection.loginAccountLimit,
                                              cookiePrefix: "chat_device_", path: "/auth/"),
        signupOpen: services.settings.signupOpen, passwordLogin: services.settings.passwordLogin
    ))
    try app.register(collection: AccountController(
        accounts: services.accounts, chats: chat.service,
        export: AccountExport(files: services.files, usage: services.usage, keys: services.keys, shares: services.shares, clock: services.clock),
        requireSession: requireSession, authLimit: authLimit,
        loginThrottle: services.loginThrottle(perKnownClient: protection.loginFailureLimit, perAccount: protection.loginAccountLimit,
                                              cookiePrefix: "chat_device_", path: "/auth/")
    ))
    try app.register(collection: AuthProvidersController(
        signIns: services.signIns, passwordLogin: services.settings.passwordLogin, signupOpen: services.settings.signupOpen,
        publicURL: services.settings.publicURL
    ))
    try app.grouped(authLimit).register(collection: OpenIDAuthController(signIns: services.signIns, secureCookies: !services.settings.debug))

    let api = app.grouped("api")
    try api.grouped(requireUser).register(collection: ModelsController(catalog: chat.catalog))
    try api.grouped(requireUser).register(collection: ToolsController(tools: chat.tools))
    try api.grouped(requireSession).register(collection: APIKeysController(keys: services.keys, users: services.users))
    try api.grouped(requireUser).register(collection: ChatController(
        chats: chat.service, rules: chat.rules, limiter: services.limiter, replyLimit: services.settings.protection.replyLimit,
        usage: services.usage
    ))
    try api.grouped(requireUser).register(collection: UsageController(ledger: services.usage))
    try api.grouped(requireUser).register(collection: FilesController(files: services.files))
    try api.grouped(requireUser).register(collection: SearchController(settings: services.settings.chat, kind: services.settings.database.kind))
    try api.grouped(requireUser).register(collection: ExportController(chats: chat.service))
    try api.register(collection: ChatStreamController(bus: chat.bus, requireUser: requireUser))
    try api.grouped(requireUser).register(collection: SharesController(shares: services.shares))
    // What a link shows: to anyone in `public` mode, to a signed-in user in `users` mode.
    // (With sharing off every link is 404, signed in or not.)
    let readers = services.settings.shareLinks == .users ? api.grouped(requireUser) : api
    try readers.register(collection: SharedReadsController(shares: services.shares, files: services.files))
    try app.register(collection: SharePageController(shares: services.shares))

    try app.grouped("v1").grouped(requireAnyKey).register(collection: V1Controller(
        catalog: chat.catalog, completions: services.completions, maxBodySize: services.settings.v1MaxBodySize, startedAt: services.clock.now()
    ))

    let admin = app.grouped("admin").grouped(AdminPageMiddleware(showInternalErrors: services.settings.debug))
    let adminSessions = AdminSessions(sessions: services.sessions, clock: services.clock, lifetime: services.settings.adminSessionLifetime,
                                      secureCookies: !services.settings.debug)
    try admin.register(collection: AdminController(
        accounts: services.accounts, sessions: adminSessions,
        signInLimit: RouteRateLimitMiddleware(limiter: services.limiter, policy: protection.authLimit.named("admin_auth")),
        loginThrottle: services.loginThrottle(perKnownClient: protection.adminLoginFailureLimit,
                                              perAccount: protection.adminLoginAccountLimit, cookiePrefix: "chat_admin_device_", path: "/admin/"),
        clock: services.clock, runner: chat.runner
    ))
    let staff = admin.grouped(AdminAuthMiddleware(sessions: adminSessions))
    try staff.register(collection: AdminUsersController(accounts: services.accounts, chats: chat.service, usage: services.usage,
                                                        keys: services.keys, users: services.users))
    try staff.register(collection: AdminUsageController(ledger: services.usage))
    try staff.register(collection: AdminProvidersController(catalog: chat.catalog,
                                                            checkTimeout: min(chat.catalog.settings.connectTimeout, .seconds(5))))
    try staff.register(collection: AdminToolsController(tools: chat.tools))
    try staff.register(collection: AdminChatsController(chats: chat.service, rules: chat.rules))
    try staff.register(collection: AdminMessagesController(clock: services.clock))
}
