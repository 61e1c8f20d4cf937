import Fluent
import FluentPostgresDriver
import Providers
import Vapor

/// The chat feature (chats, messages, replies, streams): its migrations and its services.
struct ChatFeature: Sendable {
    static func migrations(_ kind: DatabaseKind) -> [any Migration] {
        [
            CreateChats(), CreateMessages(), AddReplyAccounting(), AddConversationTree(), CreateSearchIndex(kind: kind),
            AddUsageEstimates(), AddSearchIndexTriggers(kind: kind), AddReasoning(), AddTools(),
        ]
    }

    let catalog: ModelCatalog
    /// The MCP servers' tools.
    let tools: ToolCatalog
    let replies: RunningReplies
    let bus: any ChatEventBus
    /// Each user's first page of chats, kept between requests.
    let lists: ChatLists
    let runner: ReplyRunner
    let service: ChatService
    let rules: ChatInputRules
    let background: ChatBackgroundWork
    /// Ends the streams of sessions signed out.
    let signOuts: StreamSignOuts

    init(_ app: Application, settings: Settings, dependencies: AppDependencies, metrics: AppMetrics, usage: UsageLedger,
         catalog: ModelCatalog, tools: ToolCatalog, files: FileLibrary, telemetry: Telemetry?) throws {
        self.catalog = catalog
        self.tools = tools
        replies = RunningReplies()
        let hub = ChatStreamHub(maxPendingEvents: settings.chat.maxPendingEvents, maxStreamsPerUser: settings.protection.maxStreamsPerUser,
                                clock: dependencies.clock, metrics: metrics)
        let attachments = Attachments(files: files, catalog: catalog)
        let store = ReplyStore(database: DatabaseSetup.access(app), attachments: attachments, kind: settings.database.kind)
        bus = ChatBus(hub: hub, replies: replies, store: store,
                      transport: try Self.transport(settings, clock: dependencies.clock, metrics: metrics, app: app), logger: app.logger)
        lists = ChatLists(clock: dependencies.clock)
        runner = ReplyRunner(
            replies: replies, bus: bus, lists: lists, catalog: catalog, tools: tools, usage: usage, store: store,
            clock: dependencies.clock, settings: settings.chat, logger: app.logger, metrics: metrics, telemetry: telemetry
        )
        rules = ChatInputRules(settings: settings.chat, catalog: catalog, tools: tools)
        service = ChatService(rules: rules, bus: bus, lists: lists, runner: runner, usage: usage, attachments: attachments, clock: dependencies.clock)
        signOuts = StreamSignOuts(bus: bus, database: DatabaseSetup.access(app), tasks: OwnedTasks())
        background = ChatBackgroundWork(bus: bus, runner: runner, catalog: catalog, tools: tools, settings: settings.chat, clock: dependencies.clock,
                                        accountWork: signOuts.tasks,
                                        fileSweep: FileSweep(files: files, database: DatabaseSetup.access(app), logger: app.logger))
    }

    /// How instances tell each other what happens, as `EVENT_BUS` chooses: PostgreSQL's
    /// `LISTEN/NOTIFY` on a PostgreSQL database (unless `local`); nothing for one process.
    private static func transport(_ settings: Settings, clock: any WallClock, metrics: AppMetrics,
                                  app: Application) throws -> (any InstanceTransport)? {
        guard settings.chat.eventBus != .local, case .postgres(let url) = settings.database.location else { return nil }
        return PostgresTransport(
            connection: try SQLPostgresConfiguration(url: settings.database.listenURL ?? url).coreConfiguration,
            channels: try BusChannels(schema: settings.database.searchPath?.first), eventLoopGroup: app.eventLoopGroup,
            clock: clock, logger: app.logger, metrics: metrics
        )
    }
}
