import Vapor

/// `GET /api/models/`: the models a chat may use, from what is known now (never waiting on a provider).
struct ModelsController: RouteCollection {
    let catalog: ModelCatalog

    func boot(routes: any RoutesBuilder) throws {
        routes.get("models") { _ in ModelsResponse(catalog) }
    }
}

/// The contract's `{"results": [Model]}`.
struct ModelsResponse: Content {
    struct Model: Content {
        var id: String
        var provider: String
        var name: String
        var `default`: Bool
        var contextWindow: Int?
        var capabilities: [String]
        var available: Bool

        enum CodingKeys: String, CodingKey {
            case id, provider, name, `default`, contextWindow = "context_window", capabilities, available
        }

        /// `context_window` is always present: null when unknown.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(provider, forKey: .provider)
            try container.encode(name, forKey: .name)
            try container.encode(`default`, forKey: .default)
            try container.encode(contextWindow, forKey: .contextWindow)
            try container.encode(capabilities, forKey: .capabilities)
            try container.encode(available, forKey: .available)
        }
    }

    var results: [Model]

    init(_ catalog: ModelCatalog) {
        let defaultModel = catalog.defaultModel
        results = catalog.listing.map { model in
            Model(id: model.id, provider: model.provider, name: model.name, default: model.id == defaultModel,
                  contextWindow: catalog.statedContextWindow(of: model.id),
                  capabilities: catalog.capabilityNames(of: model.id),
                  available: model.available)
        }
    }
}
