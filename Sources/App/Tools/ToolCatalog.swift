import AsyncHTTPClient
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Providers

/// The tools chats may offer the model: each MCP server's, listed in the background
/// (``refresh()``) and kept, so that no request waits on a server. Each server is on its own: one
/// that is down, slow or misbehaving is marked so, keeps what it offered before, and delays or
/// hides no other. Tools are named `<server>.<tool>` here and in the API; the model sees
/// ``ToolBox`` names its API accepts.
final class ToolCatalog: Sendable {
    struct Server: Sendable {
        let settings: ToolSettings.Server
        let client: MCPClient
    }

    /// What is known of one server now.
    struct Standing: Sendable, Equatable {
        var tools: [MCPTool] = []
        /// Its tools were listed at least once.
        var listed = false
        var available = false
        var checkedAt: Date?
        /// Why it did not answer, last time.
        var problem: String?
    }

    /// A tool as `GET /api/tools/` lists it.
    struct Listing: Sendable, Equatable {
        /// `<server>.<tool>`, or `<server>.*` for a server never reached.
        var name: String
        var server: String
        var description: String?
        var available: Bool
    }

    let settings: ToolSettings
    let servers: [Server]
    private let http: HTTPClient
    private let standing: NIOLockedValueBox<[String: Standing]>
    private let clock: any WallClock

    init(settings: ToolSettings, clock: any WallClock, eventLoopGroup: any EventLoopGroup) {
        self.settings = settings
        self.clock = clock
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(5)))
        configuration.decompression = .disabled
        let http = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration)
        self.http = http
        let maxResponse = ToolSettings.maxResponseBytes(maxResultBytes: settings.maxResultBytes)
        servers = settings.servers.map {
            Server(settings: $0, client: MCPClient(url: $0.url, token: $0.token, http: http, maxResponseBytes: maxResponse))
        }
        standing = NIOLockedValueBox(Dictionary(uniqueKeysWithValues: settings.servers.map { ($0.name, Standing()) }))
    }

    var isConfigured: Bool { !servers.isEmpty }

    /// Every tool known now, server by server; a server never reached as `<server>.*`.
    var listing: [Listing] {
        standings.flatMap { server, state -> [Listing] in
            guard state.listed else { return [Listing(name: server.name + ".*", server: server.name, description: nil, available: false)] }
            return state.tools.map { Listing(name: server.name + "." + $0.name, server: server.name, description: $0.description,
                                              available: state.available) }
        }
    }

    /// What is known of each server now (the admin's page, the log).
    var standings: [(server: ToolSettings.Server, standing: Standing)] {
        let known = standing.withLockedValue { $0 }
        return servers.map { ($0.settings, known[$0.settings.name] ?? Standing()) }
    }

    /// Lists every server's tools, each on its own within ``ToolSettings/listTimeout``.
    func refresh() async {
        await withTaskGroup(of: Void.self) { group in
            for server in servers {
                group.addTask { [clock, standing] in
                    let name = server.settings.name
                    do {
                        let tools = try await server.client.listTools(timeout: ToolSettings.listTimeout)
                        standing.withLockedValue { $0[name] = Standing(tools: tools, listed: true, available: true, checkedAt: clock.now()) }
                    } catch {
                        standing.withLockedValue { known in
                            var state = known[name] ?? Standing()
                            (state.available, state.checkedAt, state.problem) = (false, clock.now(), "\(error)")
                            known[name] = state
                        }
                    }
                }
            }
        }
    }

    /// A line for the log: every server and its tools.
    var summary: String {
        "MCP servers: " + standings.map { server, state in
            let tools = state.listed ? (state.tools.isEmpty ? "no tools" : state.tools.map(\.name).joined(separator: ", ")) : "tools to be listed"
            return "\(server.name) (\(Self.shown(server.url))): \(tools)" + (state.available ? "" : " — not answering")
        }.joined(separator: "; ")
    }

    /// `url` as the log and the admin show it: without a user name, password, query or fragment.
    static func shown(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "(a URL)" }
        (components.user, components.password, components.query, components.fragment) = (nil, nil, nil, nil)
        return components.string ?? "(a URL)"
    }

    // MARK: A chat's selection

    /// The most entries a chat's `tools` may hold, and the most bytes of one.
    static let maxSelection = 64
    static let maxSelectionEntryBytes = 200

    /// Why `selection` cannot be a chat's tools (by index), or nil when it can: each entry is
    /// `<server>.<tool>` or `<server>.*` of a configured server. Tools a server does not list now
    /// are allowed (it may be down, or add them later); only those it lists are offered.
    func problems(in selection: [String]) -> [String]? {
        guard selection.count <= Self.maxSelection else { return ["at most \(Self.maxSelection) tools"] }
        var problems: [String] = []
        for entry in selection {
            guard entry.utf8.count <= Self.maxSelectionEntryBytes, let dot = entry.firstIndex(of: "."),
                  !entry[entry.index(after: dot)...].isEmpty else {
                problems.append("'\(entry.prefix(64))' is not <server>.<tool> or <server>.*")
                continue
            }
            let server = String(entry[..<dot])
            if !servers.contains(where: { $0.settings.name == server }) {
                problems.append("no MCP server is named '\(server.prefix(64))'")
            }
        }
        return problems.isEmpty ? nil : problems
    }

    /// The tools `selection` offers now — those listed by servers that answer, in the catalog's
    /// order — called in `user`'s own sessions.
    func toolBox(for selection: [String], user: UUID) -> ToolBox {
        let wanted = Set(selection)
        var tools: [ToolBox.Tool] = []
        for (server, state) in zip(servers, standings.map(\.standing)) where state.available {
            for tool in state.tools {
                let name = server.settings.name + "." + tool.name
                guard wanted.contains(name) || wanted.contains(server.settings.name + ".*") else { continue }
                tools.append(ToolBox.Tool(name: name, server: server, tool: tool))
            }
        }
        return ToolBox(tools: tools, settings: settings, sessionKey: user.uuidString)
    }

    func shutdown() async {
        for server in servers { await server.client.close() }
        try? await http.shutdown()
    }
}

/// The tools one reply offers: their names as the model sees them (letters, digits, `_` and `-`,
/// at most 64 — Anthropic and OpenAI allow no dots), and calls by those names.
struct ToolBox: Sendable {
    struct Tool: Sendable {
        /// `<server>.<tool>`.
        let name: String
        let server: ToolCatalog.Server
        let tool: MCPTool
        var modelName = ""
    }

    let tools: [Tool]
    let settings: ToolSettings
    /// Whose MCP sessions the calls run in.
    let sessionKey: String
    private let byModelName: [String: Int]

    init(tools: [Tool], settings: ToolSettings, sessionKey: String) {
        self.settings = settings
        self.sessionKey = sessionKey
        var named: [Tool] = []
        var taken: [String: Int] = [:]
        for var tool in tools {
            tool.modelName = Self.modelName(for: tool.name, avoiding: taken)
            taken[tool.modelName] = named.count
            named.append(tool)
        }
        self.tools = named
        byModelName = taken
    }

    var isEmpty: Bool { tools.isEmpty }

    /// The declarations sent to the model.
    var modelTools: [ModelTool] {
        tools.map { ModelTool(name: $0.modelName, description: $0.tool.description, inputSchema: $0.tool.inputSchema) }
    }

    /// `<server>.<tool>` for a name the model used; nil for one this reply did not declare.
    func name(ofModelName modelName: String) -> String? { byModelName[modelName].map { tools[$0].name } }

    /// The server of the tool the model named so; nil for one this reply did not declare.
    func server(ofModelName modelName: String) -> String? { byModelName[modelName].map { tools[$0].server.settings.name } }

    /// `server.tool` as `server__tool`, other characters as `_`; too long or taken, cut and told
    /// apart by a hash of the whole name.
    static func modelName(for name: String, avoiding taken: [String: Int]) -> String {
        let allowed = name.replacingOccurrences(of: ".", with: "__").unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || scalar == "_" || scalar == "-") ? Character(scalar) : "_"
        }
        let plain = String(allowed)
        if plain.utf8.count <= 64, taken[plain] == nil { return plain }
        // Cut and told apart by a hash of the whole name (and of a counter, until the name is free).
        for attempt in 0... {
            let hash = SHA256.hash(data: Data((attempt == 0 ? name : "\(attempt):\(name)").utf8)).prefix(4).map { String(format: "%02x", $0) }.joined()
            let candidate = String(plain.prefix(55)) + "_" + hash
            if taken[candidate] == nil { return candidate }
        }
        return plain
    }

    /// Calls the tool the model named `modelName` with `arguments`: its result cut at
    /// `TOOL_MAX_RESULT_SIZE`, or an error result (an unknown tool, arguments that are not an object,
    /// a failure, no answer within `TOOL_TIMEOUT`). Throws only `CancellationError` (the reply stopped).
    func call(_ modelName: String, arguments: JSONValue) async throws -> ToolOutcome {
        let started = ContinuousClock.now
        func outcome(_ text: String, isError: Bool) -> ToolOutcome {
            ToolOutcome(content: Self.bounded(text, to: settings.maxResultBytes), isError: isError,
                        duration: started.duration(to: .now))
        }
        guard let index = byModelName[modelName] else { return outcome("No tool is named \(modelName.prefix(64)).", isError: true) }
        guard arguments.isObject else { return outcome("The arguments were not a JSON object.", isError: true) }
        let tool = tools[index]
        do {
            let result = try await tool.server.client.callTool(tool.tool.name, arguments: arguments, sessionKey: sessionKey,
                                                               timeout: settings.timeout)
            return outcome(result.text, isError: result.isError)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            try Task.checkCancellation()
            return outcome("The tool \(tool.name) failed: \(error)", isError: true)
        }
    }

    /// The most calls one reply may make (those past it are answered with an error, not made).
    static let maxCallsPerReply = 128

    /// The marker that ends a cut result.
    static let cutMarker = "\n[… cut: the result was longer than this]"

    /// `text` at most `limit` UTF-8 bytes, with ``cutMarker`` when cut.
    static func bounded(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        return MCPClient.cut(text, toBytes: max(0, limit - cutMarker.utf8.count)) + cutMarker
    }
}

/// What one call gave the model.
struct ToolOutcome: Sendable, Equatable {
    var content: String
    var isError: Bool
    var duration: Duration
}
