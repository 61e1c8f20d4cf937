import NIOCore
import Providers

/// The models chats may use and the provider that serves them: the Anthropic Messages API when an
/// API key is configured, otherwise the offline provider and its one model.
struct ModelCatalog: Sendable {
    let provider: any ModelProvider
    let modelIDs: [String]
    let defaultModel: String
    /// `max_tokens` of each reply.
    let maxTokens: Int
    let contextWindows: [String: Int]
    let defaultContextWindow: Int
    let promptCaching: Bool
    /// The model that names chats (`TITLE_MODEL`); nil: each chat's own.
    let titleModel: String?

    init(provider: any ModelProvider, settings: AnthropicSettings, modelIDs: [String]? = nil, defaultModel: String? = nil) {
        self.provider = provider
        self.modelIDs = modelIDs ?? settings.models
        self.defaultModel = defaultModel ?? settings.defaultModel
        maxTokens = settings.maxTokens
        contextWindows = settings.contextWindows
        defaultContextWindow = settings.defaultContextWindow
        promptCaching = settings.promptCaching
        titleModel = settings.titleModel
    }

    /// The catalog the settings describe; the Anthropic client's requests run on `eventLoopGroup`,
    /// its timeouts on `clock`.
    static func make(_ settings: AnthropicSettings, eventLoopGroup: any EventLoopGroup, clock: any Clock<Duration>,
                     sleep: @escaping @Sendable (Duration) async throws -> Void) -> ModelCatalog {
        guard let apiKey = settings.apiKey else {
            return ModelCatalog(provider: OfflineProvider(wordDelay: settings.offlineWordDelay), settings: settings,
                                modelIDs: [OfflineProvider.modelID], defaultModel: OfflineProvider.modelID)
        }
        let configuration = AnthropicConfiguration(
            apiKey: apiKey, baseURL: settings.baseURL, authScheme: settings.authScheme, version: settings.version,
            retries: RetryPolicy(maxRetries: settings.maxRetries), connectTimeout: settings.connectTimeout,
            firstByteTimeout: settings.firstByteTimeout, idleTimeout: settings.idleTimeout, clock: clock, sleep: sleep
        )
        return ModelCatalog(provider: AnthropicClient(configuration: configuration, eventLoopGroup: eventLoopGroup), settings: settings)
    }

    func contains(_ model: String) -> Bool { modelIDs.contains(model) }

    /// No model is connected: replies come from the offline provider.
    var isOffline: Bool { provider is OfflineProvider }

    /// Tokens `model`'s context holds.
    func contextWindow(of model: String) -> Int { contextWindows[model] ?? defaultContextWindow }

    /// What `GET /api/models/` lists.
    var listing: ModelsResponse {
        ModelsResponse(results: modelIDs.map { .init(id: $0, provider: provider.name, default: $0 == defaultModel) })
    }

    /// A line for the start-up log.
    var summary: String {
        provider.name == "anthropic"
            ? "model provider: Anthropic Messages API; default model \(defaultModel); models \(modelIDs.joined(separator: ", "))"
            : "model provider: offline (ANTHROPIC_API_KEY is not set; replies are canned, labelled offline)"
    }
}
