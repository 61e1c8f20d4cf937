import Foundation
import Vapor

/// `/admin/providers/`: every model provider — its API, where it is, whether a key is set (never
/// the key), whether it answered when last asked and why not — and every model a chat may use, with
/// its capabilities and context window. "Check now" asks every provider again.
struct AdminProvidersController: RouteCollection {
    let catalog: ModelCatalog
    /// How long "Check now" waits for a provider.
    let checkTimeout: Duration

    func boot(routes: any RoutesBuilder) throws {
        let providers = routes.grouped("providers")
        providers.get(use: page)
        providers.post("check", use: check)
    }

    struct Provider: Encodable {
        let name: String
        let api: String
        /// The base URL without any user name or password in it.
        let location: String
        let keySet: Bool
        let discovered: Bool
        let models: Int
        let available: Bool
        let checkedAt: String?
        let problem: String?
    }

    struct Model: Encodable {
        let id: String
        let provider: String
        let isDefault: Bool
        let available: Bool
        let contextWindow: Int?
        let capabilities: String
    }

    struct Page: Encodable {
        let offline: Bool
        let providers: [Provider]
        let models: [Model]
        let refreshEvery: String
    }

    func page(req: Request) async throws -> Response {
        let formatter = ISO8601DateFormatter()
        let providers = catalog.standings.map { provider, standing in
            Provider(name: provider.name, api: provider.api.rawValue, location: Self.withoutCredentials(provider.baseURL),
                     keySet: provider.apiKey != nil, discovered: provider.models == nil, models: standing.models.count,
                     available: standing.available, checkedAt: standing.checkedAt.map(formatter.string(from:)),
                     problem: standing.problem.map { String($0.prefix(300)) })
        }
        let defaultModel = catalog.defaultModel
        let models = catalog.listing.map { model in
            let capabilities = catalog.capabilityNames(of: model.id)
            return Model(id: model.id, provider: model.provider, isDefault: model.id == defaultModel, available: model.available,
                  contextWindow: catalog.statedContextWindow(of: model.id),
                  capabilities: capabilities.isEmpty ? "—" : capabilities.joined(separator: ", "))
        }
        let content = Page(offline: catalog.isOffline, providers: providers, models: models,
                           refreshEvery: "\(catalog.settings.refreshInterval.components.seconds) s")
        return try await req.adminPage("providers", title: "Providers", section: "providers", content)
    }

    /// Asks every provider for its models now (each for `checkTimeout` at most), then shows the page.
    func check(req: Request) async throws -> Response {
        await catalog.refresh(timeout: checkTimeout)
        return req.redirect(to: "/admin/providers/?notice=checked")
    }

    /// `https://user:secret@host/v1` → `https://host/v1`.
    static func withoutCredentials(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.user = nil
        components.password = nil
        return components.string ?? url
    }
}
