import Vapor

/// `GET /api/tools/`: the tools a chat may offer the model, from what is known now (never waiting
/// on an MCP server).
struct ToolsController: RouteCollection {
    let tools: ToolCatalog

    func boot(routes: any RoutesBuilder) throws {
        routes.get("tools") { _ in ToolsResponse(tools) }
    }
}

/// The contract's `{"results": [{"name", "server", "description", "available"}]}`; a server never
/// reached is one entry, `<server>.*`, without a description.
struct ToolsResponse: Content {
    struct Tool: Content {
        var name: String
        var server: String
        var description: String?
        var available: Bool
    }

    var results: [Tool]

    init(_ tools: ToolCatalog) {
        results = tools.listing.map { Tool(name: $0.name, server: $0.server, description: $0.description, available: $0.available) }
    }
}
