import Foundation

/// The tools a server offers, and calls of them.
extension MCPClient {
    /// Every tool the server lists (following `nextCursor`), within `timeout`.
    public func listTools(timeout: Duration) async throws -> [MCPTool] {
        let key = ""
        return try await Self.within(timeout) { [self] in
            var tools: [MCPTool] = []
            var cursor: String?
            var pages = 0
            repeat {
                let result = try await request("tools/list", params: cursor.map { ["cursor": .string($0)] } ?? [:], session: key)
                guard case .array(let listed)? = result["tools"] else { throw MCPError("tools/list answered without a tools list") }
                for case .object(let tool) in listed where tools.count < Self.maxTools {
                    // Names as the protocol suggests them: letters, digits, `_`, `-`, `.` and `/` (nothing that could forge a log line).
                    guard case .string(let name)? = tool["name"], !name.isEmpty, name.utf8.count <= 128,
                          name.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_-./".unicodeScalars.contains($0)) })
                    else { continue }
                    var description = ""
                    if case .string(let text)? = tool["description"] { description = Self.cut(text, toBytes: Self.maxDescriptionBytes) }
                    var schema = tool["inputSchema"] ?? .null
                    if !schema.isObject || schema.depth > 32 { schema = .object(["type": .string("object")]) }
                    tools.append(MCPTool(name: name, description: description, inputSchema: schema))
                }
                if case .string(let next)? = result["nextCursor"], !next.isEmpty { cursor = next } else { cursor = nil }
                pages += 1
            } while cursor != nil && pages < 20 && tools.count < Self.maxTools
            return tools
        }
    }

    /// Calls `name` with `arguments` (a JSON object), within `timeout`. A tool that reports an
    /// error (`isError`) is a result, not a throw; a server that answers the call with a JSON-RPC
    /// error (an unknown tool, bad arguments) throws an ``MCPError`` with `isProtocolError`.
    /// The call runs in the session of `sessionKey` (a user's id: one user's calls never see
    /// another's session state).
    public func callTool(_ name: String, arguments: JSONValue, sessionKey: String, timeout: Duration) async throws -> MCPCallResult {
        try await Self.within(timeout) { [self] in
            let result = try await request("tools/call", params: ["name": .string(name), "arguments": arguments], session: sessionKey)
            var parts: [String] = []
            if case .array(let blocks)? = result["content"] {
                for case .object(let block) in blocks {
                    switch block["type"] {
                    case .string("text"):
                        if case .string(let text)? = block["text"] { parts.append(text) }
                    case .string(let type):
                        let media: String
                        if case .string(let mimeType)? = block["mimeType"] { media = ", \(mimeType)" } else { media = "" }
                        parts.append("[\(type)\(media) not shown]")
                    default: break
                    }
                }
            }
            if parts.isEmpty, let structured = result["structuredContent"] { parts.append(structured.jsonText) }
            var isError = false
            if case .bool(true)? = result["isError"] { isError = true }
            return MCPCallResult(text: parts.joined(separator: "\n"), isError: isError)
        }
    }
}
