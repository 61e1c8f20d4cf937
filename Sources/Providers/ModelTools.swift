import Foundation

/// A tool the model may call during a reply, in the form every provider's API takes: a name the
/// API accepts (letters, digits, `_` and `-`, at most 64), what it does, and its input's JSON Schema.
public struct ModelTool: Sendable, Equatable {
    public var name: String
    public var description: String
    /// A JSON Schema of type `object`.
    public var inputSchema: JSONValue

    public init(name: String, description: String, inputSchema: JSONValue) {
        self.name = name
        self.description = description
        self.inputSchema = inputSchema
    }
}

/// A call the model made: the provider's id for it, the tool's name as the request declared it,
/// and its arguments (a JSON object).
public struct ModelToolCall: Sendable, Equatable {
    public var id: String
    public var name: String
    public var arguments: JSONValue

    public init(id: String, name: String, arguments: JSONValue) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// What a call gave back, for the model: text, and whether it is an error.
public struct ModelToolResult: Sendable, Equatable {
    public var callID: String
    public var content: String
    public var isError: Bool

    public init(callID: String, content: String, isError: Bool) {
        self.callID = callID
        self.content = content
        self.isError = isError
    }
}

/// Whether the model may call the declared tools in this request.
public enum ModelToolChoice: Sendable, Equatable {
    /// As it sees fit.
    case auto
    /// Not at all: it answers in text (the tools stay declared, so that the calls earlier in the
    /// conversation still make sense to it).
    case none
}

/// Any JSON value, kept as parsed: a tool's input schema, a call's arguments. Objects keep their
/// keys sorted when encoded (so the same value is always the same bytes).
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The most levels of nesting ``parse(_:)`` accepts.
    public static let maxDepth = 64

    /// Parses `data` as one JSON value; nil when it is not JSON or nests deeper than ``maxDepth``.
    public static func parse(_ data: Data) -> JSONValue? {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: data), value.depth <= maxDepth else { return nil }
        return value
    }

    public static func parse(_ text: String) -> JSONValue? { parse(Data(text.utf8)) }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let array = try? container.decode([JSONValue].self) {
            self = .array(array)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let bool): try container.encode(bool)
        case .number(let number):
            // Whole numbers as integers (`3`, not `3.0`): what the model and the tool wrote.
            if number.rounded() == number, abs(number) < 9.007_199_254_740_992e15 { try container.encode(Int64(number)) } else { try container.encode(number) }
        case .string(let string): try container.encode(string)
        case .array(let array): try container.encode(array)
        case .object(let object): try container.encode(object)
        }
    }

    /// The value as compact JSON, keys sorted.
    public var jsonText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    public var isObject: Bool {
        if case .object = self { return true }
        return false
    }

    /// Levels of nesting: 1 for a scalar.
    public var depth: Int {
        switch self {
        case .array(let values): 1 + (values.map(\.depth).max() ?? 0)
        case .object(let values): 1 + (values.values.map(\.depth).max() ?? 0)
        default: 1
        }
    }
}

/// A tool call as its pieces arrive: its arguments' JSON, bounded.
public struct ToolCallBuilder: Sendable {
    /// The most a call's arguments may hold, in UTF-8 bytes.
    public static let maxArgumentBytes = 1 << 20
    /// The most calls one turn of the model may hold (the server runs them one after another).
    public static let maxCallsPerTurn = 64

    var id: String
    var name: String
    private(set) var arguments = ""

    init(id: String, name: String) {
        self.id = id
        self.name = name
    }

    /// Adds a piece of the arguments; false when they would grow past ``maxArgumentBytes``.
    mutating func append(_ piece: String) -> Bool {
        guard arguments.utf8.count + piece.utf8.count <= Self.maxArgumentBytes else { return false }
        arguments += piece
        return true
    }

    /// The call: its arguments parsed (none at all is `{}`); arguments that are not JSON are kept as
    /// a string, for the server to answer the model with an error instead of calling the tool.
    var call: ModelToolCall {
        let trimmed = arguments.trimmingCharacters(in: .whitespacesAndNewlines)
        let parsed = trimmed.isEmpty ? .object([:]) : JSONValue.parse(trimmed) ?? .string(arguments)
        return ModelToolCall(id: id, name: name, arguments: parsed)
    }
}
