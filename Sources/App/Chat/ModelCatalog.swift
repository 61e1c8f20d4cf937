import Providers

/// The models chats may use and the provider that serves them: the Anthropic Messages API when an
/// API key is configured, otherwise the offline provider and its one model.
struct ModelCatalog: Sendable {
    let provider: any ModelProvider
    let modelIDs: [String]
    let defaultModel: String
    let maxTokens: Int

    static func make(_ settings: AnthropicSettings, sleep: @escaping @Sendable (Duration) async throws -> Void) -> ModelCatalog {
        guard let apiKey = settings.apiKey else {
            return ModelCatalog(
                provider: OfflineProvider(wordDelay: .milliseconds(settings.offlineWordDelay * 1000)),
                modelIDs: [OfflineProvider.modelID], defaultModel: OfflineProvider.modelID, maxTokens: settings.maxTokens
            )
        }
        let configuration = AnthropicConfiguration(
            apiKey: apiKey, baseURL: settings.baseURL, authScheme: settings.authScheme, version: settings.version,
            maxRetries: settings.maxRetries,
            connectTimeout: .milliseconds(settings.connectTimeout * 1000),
            firstByteTimeout: .milliseconds(settings.firstByteTimeout * 1000),
            idleTimeout: .milliseconds(settings.idleTimeout * 1000),
            sleep: sleep
        )
        return ModelCatalog(provider: AnthropicClient(configuration: configuration), modelIDs: settings.models,
                            defaultModel: settings.defaultModel, maxTokens: settings.maxTokens)
    }

    func contains(_ model: String) -> Bool { modelIDs.contains(model) }

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
