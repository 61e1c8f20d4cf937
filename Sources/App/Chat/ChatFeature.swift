import Fluent
import FluentPostgresDriver
import Providers
import Vapor

/// The chat feature (chats, messages, replies, streams): its migrations and its services.
struct ChatFeature: Sendable {
    static let migrations: [any Migration] = [
        CreateChats(), CreateMessages(), AddReplyAccounting(), AddConversationTree(), CreateSearchIndex(),
    ]

    let catalog: ModelCatalog
    let replies: RunningReplies
    let bus: any ChatEventBus
    let runner: ReplyRunner
    let service: ChatService
    let rules: ChatInputRules
    let background: ChatBackgroundWork
    /// Ends the streams of sessions signed out.
    let signOuts: StreamSignOuts

    init(_ app: Application, settings: Settings, dependencies: AppDependencies, metrics: AppMetrics) throws {
        catalog = dependencies.modelProvider.map { ModelCatalog(provider: $0, settings: settings.anthropic) }
            ?? ModelCatalog.make(settings.anthropic, eventLoopGroup: app.eventLoopGroup, clock: dependencies.providerClock,
                                 sleep: dependencies.sleep)
        replies = RunningReplies()
        let hub = ChatStreamHub(replies: replies, maxPendingEvents: settings.chat.maxPendingEvents,
                                maxStreamsPerUser: settings.protection.maxStreamsPerUser, clock: dependencies.clock,
                                metrics: metrics)
        let store = ReplyStore(database: DatabaseSetup.access(app))
        bus = try Self.eventBus(settings, hub: hub, replies: replies, store: store, clock: dependencies.clock, metrics: metrics, app: app)
        runner = ReplyRunner(
            replies: replies, bus: bus, catalog: catalog, store: store,
            clock: dependencies.clock, settings: settings.chat, logger: app.logger, metrics: metrics
        )
        rules = ChatInputRules(settings: settings.chat, catalog: catalog)
        service = ChatService(rules: rules, bus: bus, runner: runner, clock: dependencies.clock)
        signOuts = StreamSignOuts(bus: bus, database: DatabaseSetup.access(app), tasks: OwnedTasks())
        background = ChatBackgroundWork(bus: bus, runner: runner, catalog: catalog, settings: settings.chat, clock: dependencies.clock,
                                        accountWork: signOuts.tasks)
    }

    /// The bus `EVENT_BUS` chooses: PostgreSQL's `LISTEN/NOTIFY` on a PostgreSQL database (unless
    /// `local`), else the in-process hub.
    private static func eventBus(_ settings: Settings, hub: ChatStreamHub, replies: RunningReplies, store: ReplyStore,
                                 clock: any WallClock, metrics: AppMetrics, app: Application) throws -> any ChatEventBus {
        guard settings.chat.eventBus != .local, case .postgres(let url) = settings.database.location else { return hub }
        return PostgresChatEventBus(
            hub: hub, replies: replies, store: store, database: DatabaseSetup.access(app),
            connection: try SQLPostgresConfiguration(url: settings.database.listenURL ?? url).coreConfiguration,
            channels: try BusChannels(schema: settings.database.searchPath?.first), eventLoopGroup: app.eventLoopGroup,
            clock: clock, logger: app.logger, metrics: metrics
        )
    }
}
