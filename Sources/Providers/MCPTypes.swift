import Foundation

/// A tool an MCP server offers, as its `tools/list` describes it.
public struct MCPTool: Sendable, Equatable {
    public var name: String
    public var description: String
    /// Its input's JSON Schema (an object schema; `{"type": "object"}` when the server gave none usable).
    public var inputSchema: JSONValue

    public init(name: String, description: String, inputSchema: JSONValue) {
        self.name = name
        self.description = description
        self.inputSchema = inputSchema
    }
}

/// What a `tools/call` gave back: its text blocks joined, and whether the tool says it failed.
public struct MCPCallResult: Sendable, Equatable {
    public var text: String
    public var isError: Bool
}

/// Why an MCP server could not be used: said in words fit for a model or an operator.
public struct MCPError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    /// The server answered the request with a JSON-RPC error (it is up; the call was wrong).
    public var isProtocolError = false

    public init(_ description: String, isProtocolError: Bool = false) {
        self.description = description
        self.isProtocolError = isProtocolError
    }
}
