import Vapor

/// The contract's `ChatSummary`: a chat without its messages. Absent values are `null`.
struct ChatSummaryResponse: Codable, JSONResponse {
    var id: String
    var title: String
    var model: String
    var system: String?
    var tools: [String]
    var createdAt: Date?
    var updatedAt: Date?
    var lastMessageAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, title, model, system, tools
        case createdAt = "created_at", updatedAt = "updated_at", lastMessageAt = "last_message_at"
    }

    init(_ chat: Chat) throws {
        self.init(ChatSummaryRow(
            id: try chat.requireID(), title: chat.title, model: chat.model, system: chat.system, createdAt: chat.createdAt,
            updatedAt: chat.updatedAt, lastMessageAt: chat.lastMessageAt, activityAt: chat.activityAt, revision: chat.revision,
            tools: chat.tools
        ))
    }

    init(_ row: ChatSummaryRow) {
        id = row.id.lowercased
        title = row.title
        model = row.model
        system = row.system
        tools = row.tools
        createdAt = row.createdAt
        updatedAt = row.updatedAt
        lastMessageAt = row.lastMessageAt
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(title, forKey: .title)
        try container.encode(model, forKey: .model)
        try container.encode(system, forKey: .system)
        try container.encode(tools, forKey: .tools)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
        try container.encode(lastMessageAt, forKey: .lastMessageAt)
    }

    func writeJSON(into buffer: inout ByteBuffer) {
        writeFields(into: &buffer, messages: nil)
    }

    /// The fields in sorted order; a chat's `messages` go between `last_message_at` and `model`.
    func writeFields(into buffer: inout ByteBuffer, messages: [MessageResponse]?) {
        buffer.writeStaticString(#"{"created_at":"#)
        buffer.writeJSONDate(createdAt)
        buffer.writeStaticString(#","id":"#)
        buffer.writeJSONString(id)
        buffer.writeStaticString(#","last_message_at":"#)
        buffer.writeJSONDate(lastMessageAt)
        if let messages {
            buffer.writeStaticString(#","messages":"#)
            messages.writeJSON(into: &buffer)
        }
        buffer.writeStaticString(#","model":"#)
        buffer.writeJSONString(model)
        buffer.writeStaticString(#","system":"#)
        buffer.writeJSONString(system)
        buffer.writeStaticString(#","title":"#)
        buffer.writeJSONString(title)
        buffer.writeStaticString(#","tools":["#)
        for (index, tool) in tools.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeJSONString(tool)
        }
        buffer.writeStaticString(#"],"updated_at":"#)
        buffer.writeJSONDate(updatedAt)
        buffer.writeInteger(UInt8(ascii: "}"))
    }
}

/// A row of `chats` as ``ChatReads`` reads it (no Fluent model); the one shape a
/// ``ChatSummaryResponse`` is made from.
struct ChatSummaryRow: Sendable {
    var id: UUID
    var title: String
    var model: String
    var system: String?
    var createdAt: Date?
    var updatedAt: Date?
    var lastMessageAt: Date?
    var activityAt: Date
    /// The current conversation's revision (``Chat/revision``); not in the response.
    var revision: Int = 0
    var tools: [String] = []
}

/// The contract's `Chat`: the summary's fields and the messages in order.
struct ChatResponse: Codable, JSONResponse {
    var summary: ChatSummaryResponse
    var messages: [MessageResponse]

    private enum CodingKeys: String, CodingKey { case messages }

    init(_ chat: Chat, messages: [MessageResponse]) throws {
        self.init(summary: try ChatSummaryResponse(chat), messages: messages)
    }

    init(summary: ChatSummaryResponse, messages: [MessageResponse]) {
        self.summary = summary
        self.messages = messages
    }

    init(from decoder: any Decoder) throws {
        summary = try ChatSummaryResponse(from: decoder)
        messages = try decoder.container(keyedBy: CodingKeys.self).decode([MessageResponse].self, forKey: .messages)
    }

    func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(messages, forKey: .messages)
    }

    func writeJSON(into buffer: inout ByteBuffer) {
        summary.writeFields(into: &buffer, messages: messages)
    }
}

struct ChatListResponse: Codable, JSONResponse {
    var results: [ChatSummaryResponse]
    /// Pass as `cursor` for the next page; null on the last one.
    var next: String?

    /// `next` is always present, null on the last page.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(results, forKey: .results)
        try container.encode(next, forKey: .next)
    }

    func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"next":"#)
        buffer.writeJSONString(next)
        buffer.writeStaticString(#","results":"#)
        results.writeJSON(into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
    }
}

struct SendResponse: Codable, JSONResponse {
    var userMessage: MessageResponse
    var assistantMessage: MessageResponse

    func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"assistant_message":"#)
        assistantMessage.writeJSON(into: &buffer)
        buffer.writeStaticString(#","user_message":"#)
        userMessage.writeJSON(into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    enum CodingKeys: String, CodingKey {
        case userMessage = "user_message", assistantMessage = "assistant_message"
    }
}

/// `POST /api/chat/<id>/regenerate/`: the new reply, streaming.
struct RegenerateResponse: Codable, JSONResponse {
    var assistantMessage: MessageResponse

    enum CodingKeys: String, CodingKey { case assistantMessage = "assistant_message" }

    func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"assistant_message":"#)
        assistantMessage.writeJSON(into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
    }
}

/// A list of messages: the versions at a turn.
struct MessageListResponse: Codable, JSONResponse {
    var results: [MessageResponse]

    func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"results":"#)
        results.writeJSON(into: &buffer)
        buffer.writeInteger(UInt8(ascii: "}"))
    }
}

/// A field of a PATCH body: left out, sent as null, or sent with a value.
enum PatchField<Value: Decodable>: Decodable {
    case absent
    case null
    case value(Value)

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        self = container.decodeNil() ? .null : .value(try container.decode(Value.self))
    }
}

extension KeyedDecodingContainer {
    func decode<Value>(_ type: PatchField<Value>.Type, forKey key: Key) throws -> PatchField<Value> {
        contains(key) ? try decodeIfPresent(PatchField<Value>.self, forKey: key) ?? .null : .absent
    }
}
