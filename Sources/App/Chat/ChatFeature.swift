import Fluent
import Providers
import Vapor

/// The chat feature (chats, messages, replies, streams): its migrations and its services.
struct ChatFeature: Sendable {
    static let migrations: [any Migration] = [CreateChats(), CreateMessages(), AddReplyAccounting()]

    let catalog: ModelCatalog
    let replies: RunningReplies
    let bus: any ChatEventBus
    let runner: ReplyRunner
    let service: ChatService
    let rules: ChatInputRules
    let background: ChatBackgroundWork

    init(_ app: Application, settings: Settings, dependencies: AppDependencies, metrics: AppMetrics) {
        catalog = dependencies.modelProvider.map { ModelCatalog(provider: $0, settings: settings.anthropic) }
            ?? ModelCatalog.make(settings.anthropic, eventLoopGroup: app.eventLoopGroup, clock: dependencies.providerClock,
                                 sleep: dependencies.sleep)
        replies = RunningReplies()
        let hub = ChatStreamHub(replies: replies, maxPendingEvents: settings.chat.maxPendingEvents,
                                maxStreamsPerUser: settings.protection.maxStreamsPerUser, clock: dependencies.clock,
                                metrics: metrics, logger: app.logger)
        bus = hub
        runner = ReplyRunner(
            replies: replies, bus: bus, catalog: catalog, store: ReplyStore(database: { app.db }),
            clock: dependencies.clock, settings: settings.chat, logger: app.logger, metrics: metrics
        )
        rules = ChatInputRules(settings: settings.chat, catalog: catalog)
        service = ChatService(rules: rules, bus: bus, runner: runner, clock: dependencies.clock)
        background = ChatBackgroundWork(bus: bus, runner: runner, catalog: catalog, settings: settings.chat, clock: dependencies.clock)
    }
}
