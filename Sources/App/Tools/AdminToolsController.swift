import Foundation
import Vapor

/// `/admin/tools/`: every MCP server — where it is (never its credentials), whether a token is set
/// (never the token), whether it answered when last asked and why not — and every tool it lists.
/// "Check now" asks every server again.
struct AdminToolsController: RouteCollection {
    let tools: ToolCatalog

    func boot(routes: any RoutesBuilder) throws {
        let group = routes.grouped("tools")
        group.get(use: page)
        group.post("check", use: check)
    }

    struct Server: Encodable {
        let name: String
        let location: String
        let tokenSet: Bool
        let tools: Int
        let available: Bool
        let checkedAt: String?
        let problem: String?
    }

    struct Tool: Encodable {
        let name: String
        let description: String
        let available: Bool
    }

    struct Page: Encodable {
        let configured: Bool
        let servers: [Server]
        let tools: [Tool]
        let refreshEvery: String
        let timeout: String
        let maxSteps: Int
        let maxResultBytes: Int
    }

    func page(req: Request) async throws -> Response {
        let formatter = ISO8601DateFormatter()
        let servers = tools.standings.map { server, standing in
            Server(name: server.name, location: ToolCatalog.shown(server.url), tokenSet: server.token != nil,
                   tools: standing.tools.count, available: standing.available, checkedAt: standing.checkedAt.map(formatter.string(from:)),
                   problem: standing.problem.map { String($0.prefix(300)) })
        }
        let listed = tools.listing.filter { !$0.name.hasSuffix(".*") }
            .map { Tool(name: $0.name, description: String(($0.description ?? "").prefix(300)), available: $0.available) }
        let settings = tools.settings
        let content = Page(configured: tools.isConfigured, servers: servers, tools: listed,
                           refreshEvery: "\(settings.refreshInterval.components.seconds) s", timeout: "\(settings.timeout.components.seconds) s",
                           maxSteps: settings.maxSteps, maxResultBytes: settings.maxResultBytes)
        return try await req.adminPage("tools", title: "Tools", section: "tools", content)
    }

    /// Lists every server's tools now (each within ``ToolSettings/listTimeout``), then shows the page.
    func check(req: Request) async throws -> Response {
        await tools.refresh()
        return req.redirect(to: "/admin/tools/?notice=checked")
    }
}
