import Foundation
import NIOCore
import Providers

/// A call a reply made to a tool, as the assistant message keeps it (`messages.tool_calls`) and
/// the contract's `ToolCall` shows it: `{"call_id", "name", "arguments", "result", "is_error",
/// "duration_ms"}` (`result` and `duration_ms` null while the call runs).
///
/// It also keeps where the call came in the reply — how much of the answer and of the reasoning
/// preceded it — which lays the reply out in stream segments (``ReplyLayout``) the same way on
/// every instance; that is not part of the contract's shape.
struct ToolCallRecord: Codable, Sendable, Equatable {
    var callID: String
    /// `<server>.<tool>`.
    var name: String
    var arguments: JSONValue
    var result: String?
    var isError: Bool
    var durationMs: Int?
    /// UTF-8 bytes of the answer, and of the reasoning, before the call.
    var textOffset: Int
    var reasoningOffset: Int

    enum CodingKeys: String, CodingKey {
        case callID = "call_id", name, arguments, result, isError = "is_error", durationMs = "duration_ms"
        case textOffset = "text_offset", reasoningOffset = "reasoning_offset"
    }

    init(callID: String, name: String, arguments: JSONValue, result: String? = nil, isError: Bool = false, durationMs: Int? = nil,
         textOffset: Int, reasoningOffset: Int) {
        self.callID = callID
        self.name = name
        self.arguments = arguments
        self.result = result
        self.isError = isError
        self.durationMs = durationMs
        self.textOffset = textOffset
        self.reasoningOffset = reasoningOffset
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        callID = try container.decode(String.self, forKey: .callID)
        name = try container.decode(String.self, forKey: .name)
        arguments = try container.decodeIfPresent(JSONValue.self, forKey: .arguments) ?? .object([:])
        result = try container.decodeIfPresent(String.self, forKey: .result)
        isError = try container.decodeIfPresent(Bool.self, forKey: .isError) ?? false
        durationMs = try container.decodeIfPresent(Int.self, forKey: .durationMs)
        textOffset = try container.decodeIfPresent(Int.self, forKey: .textOffset) ?? 0
        reasoningOffset = try container.decodeIfPresent(Int.self, forKey: .reasoningOffset) ?? 0
    }

    /// Every field, the placement too (what the database keeps).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try encodeContract(into: &container)
        try container.encode(textOffset, forKey: .textOffset)
        try container.encode(reasoningOffset, forKey: .reasoningOffset)
    }

    /// The contract's fields, every one present.
    func encodeContract(into container: inout KeyedEncodingContainer<CodingKeys>) throws {
        try container.encode(callID, forKey: .callID)
        try container.encode(name, forKey: .name)
        try container.encode(arguments, forKey: .arguments)
        try container.encode(result, forKey: .result)
        try container.encode(isError, forKey: .isError)
        try container.encode(durationMs, forKey: .durationMs)
    }

    /// The contract's shape, for `Codable` responses.
    struct Contract: Encodable {
        let record: ToolCallRecord

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try record.encodeContract(into: &container)
        }
    }

    /// The contract's shape, as ``JSONCoding`` writes ``Contract`` (keys sorted).
    func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"arguments":"#)
        buffer.writeString(arguments.jsonText)
        buffer.writeStaticString(#","call_id":"#)
        buffer.writeJSONString(callID)
        buffer.writeStaticString(#","duration_ms":"#)
        if let durationMs { buffer.writeJSONInt(durationMs) } else { buffer.writeStaticString("null") }
        buffer.writeStaticString(isError ? #","is_error":true"# : #","is_error":false"#)
        buffer.writeStaticString(#","name":"#)
        buffer.writeJSONString(name)
        buffer.writeStaticString(#","result":"#)
        buffer.writeJSONString(result)
        buffer.writeInteger(UInt8(ascii: "}"))
    }
}

extension [ToolCallRecord] {
    /// As `messages.tool_calls` keeps them.
    var storedJSON: String {
        guard !isEmpty, let data = try? JSONCoding.makeEncoder().encode(self) else { return "[]" }
        return String(decoding: data, as: UTF8.self)
    }

    init(storedJSON: String) {
        guard storedJSON != "[]", let calls = try? JSONCoding.makeDecoder().decode([ToolCallRecord].self, from: Data(storedJSON.utf8)) else {
            self = []
            return
        }
        self = calls
    }

    /// Calls answered so far.
    var answered: Int { lazy.filter { $0.result != nil }.count }
}
