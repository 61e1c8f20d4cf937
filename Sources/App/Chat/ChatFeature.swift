import Fluent
import Providers
import Vapor

/// The chat feature (chats, messages, replies, streams): its migrations and its services.
struct ChatFeature: Sendable {
    static let migrations: [any Migration] = [CreateChats(), CreateMessages()]

    let catalog: ModelCatalog
    let hub: ChatStreamHub
    let runner: ReplyRunner
    let service: ChatService
    let rules: ChatInputRules
    let background: ChatBackgroundWork

    init(_ app: Application, settings: Settings, dependencies: AppDependencies, metrics: AppMetrics) {
        catalog = dependencies.modelProvider.map {
            ModelCatalog(provider: $0, modelIDs: settings.anthropic.models, defaultModel: settings.anthropic.defaultModel,
                         maxTokens: settings.anthropic.maxTokens)
        } ?? ModelCatalog.make(settings.anthropic, sleep: dependencies.sleep)
        hub = ChatStreamHub(maxPendingEvents: settings.chat.maxPendingEvents, maxStreamsPerUser: settings.protection.maxStreamsPerUser,
                            clock: dependencies.clock, metrics: metrics)
        runner = ReplyRunner(
            bus: hub, catalog: catalog, store: ReplyStore(database: { app.db }),
            clock: dependencies.clock, settings: settings.chat, logger: app.logger, metrics: metrics
        )
        rules = ChatInputRules(settings: settings.chat, catalog: catalog)
        service = ChatService(rules: rules, bus: hub, runner: runner, clock: dependencies.clock)
        background = ChatBackgroundWork(hub: hub, runner: runner, catalog: catalog, settings: settings.chat, clock: dependencies.clock)
    }
}
