import Providers
import Vapor

/// What the outside world provides, injected so tests can substitute it.
public struct AppDependencies: Sendable {
    public var clock: any WallClock
    /// Waits between retries of the model provider.
    public var sleep: @Sendable (Duration) async throws -> Void
    /// The clock the model provider's timeouts run on (tests move a manual one).
    public var providerClock: any Clock<Duration>
    /// Where rate-limit state lives; in this process unless given.
    public var rateLimitStore: (any RateLimitStore)?

    public init(
        clock: any WallClock = SystemClock(),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        providerClock: any Clock<Duration> = ContinuousClock(),
        rateLimitStore: (any RateLimitStore)? = nil
    ) {
        self.clock = clock
        self.sleep = sleep
        self.providerClock = providerClock
        self.rateLimitStore = rateLimitStore
    }
}

/// The services built once at start-up and handed to controllers and commands.
struct AppServices: Sendable {
    let settings: Settings
    let clock: any WallClock
    let metrics: AppMetrics
    let limiter: RateLimiter
    let addresses: ClientAddressResolver
    let passwords: PasswordService
    let tokens: TokenSigner
    let sessions: SessionIssuer
    let accounts: AccountService
    /// The accounts of recent requests, kept in memory.
    let users: SignedInUsers
    /// What replies consumed, and the daily quota.
    let usage: UsageLedger
    /// Sign-in through OpenID providers (Google's and any other).
    let signIns: OpenIDSignIns
    let chat: ChatFeature
    /// Users' files (attachments).
    let files: FileLibrary
    /// What this process sends providers in ``RelayHeader``.
    let relayID: String
    /// Users' personal API keys.
    let keys: APIKeys
    /// `/v1/chat/completions`.
    let completions: Completions
    /// Share links.
    let shares: ShareService
    /// Traces of requests and replies; nil when no collector is named (``TracingSettings``).
    let telemetry: Telemetry?
    /// Reading the OpenID providers' discovery documents at start-up.
    let signInDiscovery = OwnedTasks()

    static func make(_ app: Application, settings: Settings, dependencies: AppDependencies) async throws -> AppServices {
        let clock = dependencies.clock
        // This process, to the model providers: a request that comes back here is refused.
        let relayID = UUID().uuidString.lowercased()
        let metrics = AppMetrics()
        let limiter = RateLimiter(
            store: dependencies.rateLimitStore ?? rateLimitStore(settings, app),
            clock: clock, enabled: settings.protection.rateLimitsEnabled, metrics: metrics
        )
        let passwords = try PasswordService(cost: settings.bcryptCost, threadPool: app.threadPool)
        let tokens = await TokenSigner(secretKey: settings.secretKey, clock: clock,
                                       accessLifetime: settings.accessTokenLifetime,
                                       refreshLifetime: settings.refreshTokenLifetime)
        let users = SignedInUsers(clock: clock)
        let keys = APIKeys(secretKey: settings.secretKey, clock: clock, kind: settings.database.kind)
        let sessions = SessionIssuer(signer: tokens, clock: clock, users: users, databaseKind: settings.database.kind)
        let accounts = AccountService(passwords: passwords, sessions: sessions, clock: clock)
        let signIns = try OpenIDSignIns(settings: settings, client: app.client, accounts: accounts, sessions: sessions, clock: clock)
        let usage = UsageLedger(settings: settings.usage, clock: clock, kind: settings.database.kind)
        let catalog = modelCatalog(settings.models, dependencies: dependencies, eventLoopGroup: app.eventLoopGroup, relayID: relayID)
        let files = try FileLibrary.make(settings.files, app: app, clock: clock, kind: settings.database.kind)
        let tools = ToolCatalog(settings: settings.tools, clock: clock, eventLoopGroup: app.eventLoopGroup)
        let telemetry = try settings.tracing.map { try Telemetry(settings: $0, logger: app.logger) }
        let chat = try ChatFeature(app, settings: settings, dependencies: dependencies, metrics: metrics, usage: usage, catalog: catalog,
                                   tools: tools, files: files, telemetry: telemetry)
        // An account that changes is forgotten and its signed-out streams end, here and on every instance.
        // A revoked key is one of these changes: its owner's keys are forgotten here and everywhere.
        users.announceChanges { [bus = chat.bus, signOuts = chat.signOuts] id in
            keys.forget(user: id)
            bus.announce(.account(id))
            signOuts.accountChanged(id)
        }
        // A user's chat list changes: it is read again here and on every instance.
        chat.lists.announceChanges { [bus = chat.bus] user in bus.announce(.chatList(user)) }
        chat.bus.onCachedChanges { [signOuts = chat.signOuts, lists = chat.lists] change in
            switch change {
            case .account(let id):
                users.forget(id)
                keys.forget(user: id)
                signOuts.accountChanged(id)
            case .chatList(let user):
                lists.forget(user)
            case nil:
                users.forget(nil)
                keys.forget(user: nil)
                signOuts.accountChanged(nil)
                lists.forget(nil)
            }
        }
        return AppServices(
            settings: settings, clock: clock, metrics: metrics, limiter: limiter,
            addresses: ClientAddressResolver(trustedProxies: settings.protection.trustedProxies),
            passwords: passwords, tokens: tokens, sessions: sessions, accounts: accounts, users: users,
            usage: usage, signIns: signIns, chat: chat, files: files, relayID: relayID, keys: keys,
            completions: Completions(catalog: catalog, usage: usage, limiter: limiter, replyLimit: settings.protection.replyLimit,
                                     tasks: OwnedTasks(), metrics: metrics, relayID: relayID, clock: clock,
                                     keepAlive: settings.chat.keepAliveInterval, telemetry: telemetry),
            shares: ShareService(chats: chat.service, files: files, mode: settings.shareLinks, publicURL: settings.publicURL, clock: clock,
                                 kind: settings.database.kind),
            telemetry: telemetry
        )
    }
}

extension AppServices {
    /// A sign-in throttle (``LoginThrottle``) with these budgets, its device cookies named
    /// `cookiePrefix…` and sent to `path` only.
    func loginThrottle(perKnownClient: RateLimitPolicy, perAccount: RateLimitPolicy, cookiePrefix: String, path: String) -> LoginThrottle {
        LoginThrottle(limiter: limiter, perKnownClient: perKnownClient, perAccount: perAccount,
                      devices: LoginDevices(secretKey: settings.secretKey, cookiePrefix: cookiePrefix, path: path, secure: !settings.debug),
                      clients: LoginClients(clock: clock))
    }
}

/// The models the settings describe, each provider's client wired here: its requests run on
/// `eventLoopGroup` (the server's own), its timeouts on the injected clock, and each carries
/// `relayID` so that a request that comes back to this server is refused.
private func modelCatalog(_ settings: ModelSettings, dependencies: AppDependencies, eventLoopGroup: any EventLoopGroup,
                          relayID: String) -> ModelCatalog {
    let client = ClientSettings(retries: RetryPolicy(maxRetries: settings.maxRetries), connectTimeout: settings.connectTimeout,
                                firstByteTimeout: settings.firstByteTimeout, idleTimeout: settings.idleTimeout,
                                clock: dependencies.providerClock, sleep: dependencies.sleep)
    let providers = settings.providers.map { provider -> ModelCatalog.Provider in
        switch provider.api {
        case .anthropic:
            let configuration = AnthropicConfiguration(
                apiKey: provider.apiKey ?? "", baseURL: provider.baseURL, authScheme: provider.authScheme, version: provider.version,
                retries: client.retries, connectTimeout: client.connectTimeout, firstByteTimeout: client.firstByteTimeout,
                idleTimeout: client.idleTimeout, clock: client.clock, sleep: client.sleep
            )
            return .init(settings: provider, client: AnthropicClient(configuration: configuration, eventLoopGroup: eventLoopGroup,
                                                                      name: provider.name, relayID: relayID))
        case .openai:
            let configuration = OpenAIConfiguration(name: provider.name, baseURL: provider.baseURL, apiKey: provider.apiKey,
                                                    relayID: relayID, settings: client)
            return .init(settings: provider, client: OpenAIClient(configuration: configuration, eventLoopGroup: eventLoopGroup))
        }
    }
    return ModelCatalog(settings: settings, providers: providers, clock: dependencies.clock)
}

/// Where rate limits are counted: shared in PostgreSQL (unless `RATE_LIMIT_STORE=memory`), else in this process.
private func rateLimitStore(_ settings: Settings, _ app: Application) -> any RateLimitStore {
    if settings.protection.rateLimitStore != .memory, !settings.database.isSQLite {
        return PostgresRateLimitStore(database: DatabaseSetup.access(app),
                                      fallback: InMemoryRateLimitStore(maxKeys: settings.protection.rateLimitMaxKeys), logger: app.logger)
    }
    return InMemoryRateLimitStore(maxKeys: settings.protection.rateLimitMaxKeys)
}

extension Application {
    private struct ServicesKey: StorageKey {
        typealias Value = AppServices
    }

    /// The services `configure` built; for commands and tests. Request handlers get theirs
    /// through their controller.
    var services: AppServices? {
        get { storage[ServicesKey.self] }
        set { storage[ServicesKey.self] = newValue }
    }
}
