import Foundation

/// Tools through the Model Context Protocol: the MCP servers the operator names (`MCP_SERVERS`,
/// `MCP_SERVER_<NAME>_TOKEN`) and how calls are bounded (`TOOL_TIMEOUT`, `TOOL_MAX_STEPS`,
/// `TOOL_MAX_RESULT_SIZE`).
public struct ToolSettings: Sendable {
    /// An MCP server to reach over Streamable HTTP.
    public struct Server: Sendable, Equatable {
        /// What its tools' names start with (`<server>.<tool>`).
        public var name: String
        public var url: String
        /// Sent as a bearer token; nil: none.
        public var token: String?
    }

    public var servers: [Server]
    /// How long one call may take (`TOOL_TIMEOUT`, default 30s); past it the model gets an error result.
    public var timeout: Duration
    /// Tool rounds a reply may take (`TOOL_MAX_STEPS`, default 8); then the model answers without tools.
    public var maxSteps: Int
    /// A result's most UTF-8 bytes as the model and the chat get it (`TOOL_MAX_RESULT_SIZE`, default 64kb).
    public var maxResultBytes: Int
    /// How often the servers' tools are listed again (`MCP_REFRESH_INTERVAL`, default 5m).
    public var refreshInterval: Duration

    /// How long listing one server's tools may take, in the background.
    public static let listTimeout = Duration.seconds(10)
    /// The most bytes a server's answer may hold before it is read (a result is cut after).
    static func maxResponseBytes(maxResultBytes: Int) -> Int { max(8 << 20, maxResultBytes * 8) }

    init(_ read: SettingsReader) throws(SettingsError) {
        timeout = try read.duration("TOOL_TIMEOUT", default: .seconds(30))
        maxSteps = try read.int("TOOL_MAX_STEPS", default: 8, in: 1...100)
        maxResultBytes = try read.byteCount("TOOL_MAX_RESULT_SIZE", default: 64 << 10)
        guard maxResultBytes <= 16 << 20 else {
            throw SettingsError(key: "TOOL_MAX_RESULT_SIZE", problem: "must be at most 16mb, got \(maxResultBytes) bytes")
        }
        refreshInterval = try read.duration("MCP_REFRESH_INTERVAL", default: .seconds(300))
        servers = []
        for item in read.list("MCP_SERVERS", default: []) {
            // Split at the first `=`: a URL may hold more.
            guard let equals = item.firstIndex(of: "=") else {
                throw SettingsError(key: "MCP_SERVERS", problem: "expected name=url items, got '\(item)'")
            }
            let name = item[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            guard name.utf8.count <= 32, !name.isEmpty,
                  name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
                throw SettingsError(key: "MCP_SERVERS", problem: "a server's name is 1 to 32 letters, digits, _ or -, got '\(name)'")
            }
            guard !servers.contains(where: { $0.name == name }) else {
                throw SettingsError(key: "MCP_SERVERS", problem: "the server '\(name)' is named twice")
            }
            let url = item[item.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host?.isEmpty == false else {
                throw SettingsError(key: "MCP_SERVERS", problem: "the server '\(name)' needs an http(s) URL, got '\(url)'")
            }
            let tokenKey = "MCP_SERVER_\(name.uppercased().replacingOccurrences(of: "-", with: "_"))_TOKEN"
            servers.append(Server(name: name, url: url, token: read.string(tokenKey)))
        }
    }
}
