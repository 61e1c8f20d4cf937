import Foundation
import NIOConcurrencyHelpers
import Providers

/// The models chats may use and the provider that serves each, by id: a plain id for the models of
/// the provider `ANTHROPIC_*` configures, `<provider>/<model>` for every other (the model's own name
/// may hold more `/`s); `offline` when no provider is configured. What each provider offers — its
/// configured models, or those its models endpoint lists — and whether it answers are kept here,
/// refreshed in the background (``refresh(timeout:)``) and never waited for by a request.
final class ModelCatalog: Sendable {
    struct Provider: Sendable {
        let settings: ModelSettings.Provider
        let client: any ModelProvider
    }

    /// A model as `GET /api/models/` lists it.
    struct Model: Sendable, Equatable {
        var id: String
        var provider: String
        var name: String
        var available: Bool
    }

    /// What is known of one provider now.
    struct Standing: Sendable, Equatable {
        /// Its models' own names: configured, or listed by it; empty until first listed.
        var models: [String]
        var available = true
        var checkedAt: Date?
        /// Why it did not answer, last time.
        var problem: String?
    }

    let providers: [Provider]
    let settings: ModelSettings
    /// Answers when no provider is configured.
    let offline: OfflineProvider?
    private let standing: NIOLockedValueBox<[String: Standing]>
    private let clock: any WallClock

    init(settings: ModelSettings, providers: [Provider], clock: any WallClock) {
        self.settings = settings
        self.providers = providers
        self.clock = clock
        offline = providers.isEmpty ? OfflineProvider(wordDelay: settings.offlineWordDelay) : nil
        standing = NIOLockedValueBox(Dictionary(uniqueKeysWithValues: providers.map {
            ($0.settings.name, Standing(models: $0.settings.models ?? []))
        }))
    }

    /// Where a model's calls go: its provider (its settings; nil for the offline stand-in) and the
    /// model's own name there.
    typealias Route = (provider: any ModelProvider, settings: ModelSettings.Provider?, model: String)

    /// The provider serving `id`, and the model's own name there; nil when no provider offers it now.
    func route(_ id: String) -> Route? {
        if let offline { return id == OfflineProvider.modelID ? (offline, nil, id) : nil }
        let known = standing.withLockedValue { $0 }
        for provider in providers {
            let model: String
            if provider.settings.plainIDs {
                guard !id.contains("/") else { continue }
                model = id
            } else {
                guard id.hasPrefix(provider.settings.name + "/") else { continue }
                model = String(id.dropFirst(provider.settings.name.count + 1))
            }
            guard known[provider.settings.name]?.models.contains(model) == true else { return nil }
            return (provider.client, provider.settings, model)
        }
        return nil
    }

    func contains(_ id: String) -> Bool { route(id) != nil }

    /// Every model known now, provider by provider.
    var modelIDs: [String] { listing.map(\.id) }

    /// The model new chats use: `DEFAULT_MODEL` (or `ANTHROPIC_MODEL`) while some provider offers
    /// it (or nothing is known yet), else the first model known.
    var defaultModel: String {
        if offline != nil { return OfflineProvider.modelID }
        let known = modelIDs
        if let stated = settings.defaultModel, known.isEmpty || known.contains(stated) { return stated }
        return known.first ?? settings.providers.first.map { $0.id(of: "") } ?? OfflineProvider.modelID
    }

    var listing: [Model] {
        if offline != nil { return [Model(id: OfflineProvider.modelID, provider: "offline", name: OfflineProvider.modelID, available: true)] }
        let known = standing.withLockedValue { $0 }
        return providers.flatMap { provider -> [Model] in
            let state = known[provider.settings.name] ?? Standing(models: [])
            let name = provider.settings.plainIDs ? "anthropic" : provider.settings.name
            return state.models.map { Model(id: provider.settings.id(of: $0), provider: name, name: $0, available: state.available) }
        }
    }

    /// What is known of each provider now (the admin's page).
    var standings: [(provider: ModelSettings.Provider, standing: Standing)] {
        let known = standing.withLockedValue { $0 }
        return providers.map { ($0.settings, known[$0.settings.name] ?? Standing(models: [])) }
    }

    /// Tokens `id`'s context holds, as configured; nil when nobody said (Anthropic's: `ANTHROPIC_CONTEXT_WINDOW`).
    func statedContextWindow(of id: String) -> Int? {
        settings.contextWindows[id] ?? (isAnthropic(id) ? settings.anthropicContextWindow : nil)
    }

    /// Tokens a conversation for `id` is fitted into: its window as stated, else a cautious one.
    func contextWindow(of id: String) -> Int {
        statedContextWindow(of: id) ?? (offline != nil ? settings.anthropicContextWindow : ModelSettings.unknownContextWindow)
    }

    /// `id` is served through Anthropic's Messages API (whose limits and features apply to it).
    func isAnthropic(_ id: String) -> Bool { route(id)?.settings?.api == .anthropic }

    /// Claude reading PDFs as documents (at most ``Attachments/anthropicMaxPDFPages`` a request).
    func readsDocumentsAsClaude(_ id: String) -> Bool { isAnthropic(id) && capabilities(of: id).contains(.documents) }

    func capabilities(of id: String) -> Set<ModelSettings.Capability> {
        if let stated = settings.capabilities[id] { return stated }
        return isAnthropic(id) ? [.vision, .documents, .tools] : []
    }

    /// `id`'s capabilities by name, in the contract's order (vision, documents, tools, reasoning).
    func capabilityNames(of id: String) -> [String] {
        let capabilities = capabilities(of: id)
        return ModelSettings.Capability.allCases.filter(capabilities.contains).map(\.rawValue)
    }

    /// Extended thinking for `id` (Anthropic's API only): the budget in tokens, or nil.
    func thinkingBudget(of id: String) -> Int? {
        isAnthropic(id) ? settings.thinkingBudgets[id] : nil
    }

    var maxTokens: Int { settings.maxTokens }
    var promptCaching: Bool { settings.promptCaching }
    var titleModel: String? { settings.titleModel }
    /// No model is connected: replies come from the offline provider.
    var isOffline: Bool { offline != nil }

    /// Asks every provider for its models, each on its own and for `timeout` at most: one that does
    /// not answer (down, slow, misbehaving) is marked unavailable, keeps what it offered before, and
    /// delays no other. A provider with configured models keeps them (one without a models endpoint,
    /// 404 or 405, counts as answering); the others' are what they list.
    func refresh(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            for provider in providers {
                group.addTask { [clock, standing] in
                    let name = provider.settings.name
                    do {
                        let listed = try await provider.client.listModels(timeout: timeout)
                        standing.withLockedValue { known in
                            known[name] = Standing(models: provider.settings.models ?? listed, available: true, checkedAt: clock.now())
                        }
                    } catch let error as ProviderError where [404, 405].contains(error.status) && provider.settings.models != nil {
                        // It answered, without a models list (not every server has one): its configured models stand.
                        standing.withLockedValue { known in
                            known[name] = Standing(models: provider.settings.models ?? [], available: true, checkedAt: clock.now(),
                                                   problem: "no models list (HTTP \(error.status ?? 0)); the configured models are offered")
                        }
                    } catch {
                        standing.withLockedValue { known in
                            var state = known[name] ?? Standing(models: [])
                            (state.available, state.checkedAt, state.problem) = (false, clock.now(), "\(error)")
                            known[name] = state
                        }
                    }
                }
            }
        }
    }

    /// A line for the log: every provider and its models.
    var summary: String {
        if offline != nil { return "model provider: offline (no provider is configured; replies are canned, labelled offline)" }
        return "model providers: " + standings.map { provider, state in
            let models = state.models.isEmpty ? (provider.models == nil ? "models to be listed" : "no models") : state.models.joined(separator: ", ")
            return "\(provider.name) (\(provider.api.rawValue) at \(provider.baseURL)): \(models)" + (state.available ? "" : " — not answering")
        }.joined(separator: "; ") + "; default model \(defaultModel)"
    }

    func shutdown() async throws {
        for provider in providers { try await provider.client.shutdown() }
    }
}
