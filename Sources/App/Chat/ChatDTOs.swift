import Vapor

/// The contract's `Message`.
struct MessageResponse: Codable, Equatable, JSONResponse {
    var id: String
    var chatID: String
    var sequence: Int
    var role: MessageRole
    var content: String
    var status: MessageStatus
    var model: String
    var inputTokens: Int
    var outputTokens: Int
    var cacheReadInputTokens: Int
    var cacheCreationInputTokens: Int
    var omittedMessages: Int
    var stopReason: String?
    var error: String?
    var createdAt: Date?
    /// The message this one follows; nil for a chat's first.
    var parentID: String?
    /// In the chat's current conversation, or an earlier version (or what followed one).
    var current: Bool
    /// Its number among the versions at its turn (the messages that follow the same message with
    /// the same role), from 1; `versions` of them.
    var version: Int
    var versions: Int

    enum CodingKeys: String, CodingKey {
        case id, chatID = "chat_id", sequence, role, content, status, model
        case inputTokens = "input_tokens", outputTokens = "output_tokens"
        case cacheReadInputTokens = "cache_read_input_tokens", cacheCreationInputTokens = "cache_creation_input_tokens"
        case omittedMessages = "omitted_messages", stopReason = "stop_reason", error, createdAt = "created_at"
        case parentID = "parent_id", current, version, versions
    }

    /// Every field is always present; absent values are `null`.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(chatID, forKey: .chatID)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(role, forKey: .role)
        try container.encode(content, forKey: .content)
        try container.encode(status, forKey: .status)
        try container.encode(model, forKey: .model)
        try container.encode(inputTokens, forKey: .inputTokens)
        try container.encode(outputTokens, forKey: .outputTokens)
        try container.encode(cacheReadInputTokens, forKey: .cacheReadInputTokens)
        try container.encode(cacheCreationInputTokens, forKey: .cacheCreationInputTokens)
        try container.encode(omittedMessages, forKey: .omittedMessages)
        try container.encode(stopReason, forKey: .stopReason)
        try container.encode(error, forKey: .error)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(parentID, forKey: .parentID)
        try container.encode(current, forKey: .current)
        try container.encode(version, forKey: .version)
        try container.encode(versions, forKey: .versions)
    }

    /// The same bytes as ``encode(to:)`` through ``JSONCoding``, without `Codable` (the stream's hot path).
    func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"cache_creation_input_tokens":"#)
        buffer.writeJSONInt(cacheCreationInputTokens)
        buffer.writeStaticString(#","cache_read_input_tokens":"#)
        buffer.writeJSONInt(cacheReadInputTokens)
        buffer.writeStaticString(#","chat_id":"#)
        buffer.writeJSONString(chatID)
        buffer.writeStaticString(#","content":"#)
        buffer.writeJSONString(content)
        buffer.writeStaticString(#","created_at":"#)
        buffer.writeJSONDate(createdAt)
        buffer.writeStaticString(current ? #","current":true"# : #","current":false"#)
        buffer.writeStaticString(#","error":"#)
        buffer.writeJSONString(error)
        buffer.writeStaticString(#","id":"#)
        buffer.writeJSONString(id)
        buffer.writeStaticString(#","input_tokens":"#)
        buffer.writeJSONInt(inputTokens)
        buffer.writeStaticString(#","model":"#)
        buffer.writeJSONString(model)
        buffer.writeStaticString(#","omitted_messages":"#)
        buffer.writeJSONInt(omittedMessages)
        buffer.writeStaticString(#","output_tokens":"#)
        buffer.writeJSONInt(outputTokens)
        buffer.writeStaticString(#","parent_id":"#)
        buffer.writeJSONString(parentID)
        buffer.writeStaticString(#","role":"#)
        buffer.writeJSONString(role.rawValue)
        buffer.writeStaticString(#","sequence":"#)
        buffer.writeJSONInt(sequence)
        buffer.writeStaticString(#","status":"#)
        buffer.writeJSONString(status.rawValue)
        buffer.writeStaticString(#","stop_reason":"#)
        buffer.writeJSONString(stopReason)
        buffer.writeStaticString(#","version":"#)
        buffer.writeJSONInt(version)
        buffer.writeStaticString(#","versions":"#)
        buffer.writeJSONInt(versions)
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    init(id: String, chatID: String, sequence: Int, role: MessageRole, content: String, status: MessageStatus, model: String,
         inputTokens: Int, outputTokens: Int, cacheReadInputTokens: Int, cacheCreationInputTokens: Int, omittedMessages: Int,
         stopReason: String?, error: String?, createdAt: Date?, parentID: String?, current: Bool, version: Int, versions: Int) {
        self.id = id
        self.chatID = chatID
        self.sequence = sequence
        self.role = role
        self.content = content
        self.status = status
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheReadInputTokens = cacheReadInputTokens
        self.cacheCreationInputTokens = cacheCreationInputTokens
        self.omittedMessages = omittedMessages
        self.stopReason = stopReason
        self.error = error
        self.createdAt = createdAt
        self.parentID = parentID
        self.current = current
        self.version = version
        self.versions = versions
    }

    /// The reply as it was when it began: streaming, no text, no usage yet.
    var asBegun: MessageResponse {
        var begun = self
        begun.status = .streaming
        begun.content = ""
        (begun.inputTokens, begun.outputTokens, begun.cacheReadInputTokens, begun.cacheCreationInputTokens) = (0, 0, 0, 0)
        (begun.stopReason, begun.error) = (nil, nil)
        return begun
    }

    init(_ message: Message) throws {
        id = try message.requireID().lowercased
        chatID = message.$chat.id.lowercased
        sequence = message.sequence
        role = message.role
        content = message.content
        status = message.status
        model = message.model
        inputTokens = message.inputTokens
        outputTokens = message.outputTokens
        cacheReadInputTokens = message.cacheReadInputTokens
        cacheCreationInputTokens = message.cacheCreationInputTokens
        omittedMessages = message.omittedMessages
        stopReason = message.stopReason
        error = message.error
        createdAt = message.createdAt
        parentID = message.parentID?.lowercased
        current = message.isCurrent
        version = message.version
        versions = message.versions
    }
}

/// The contract's `ChatSummary`: a chat without its messages. Absent values are `null`.
struct ChatSummaryResponse: Codable, JSONResponse {
    var id: String
    var title: String
    var model: String
    var system: String?
    var createdAt: Date?
    var updatedAt: Date?
    var lastMessageAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, title, model, system
        case createdAt = "created_at", updatedAt = "updated_at", lastMessageAt = "last_message_at"
    }

    init(_ chat: Chat) throws {
        self.init(ChatSummaryRow(
            id: try chat.requireID(), title: chat.title, model: chat.model, system: chat.system, createdAt: chat.createdAt,
            updatedAt: chat.updatedAt, lastMessageAt: chat.lastMessageAt, activityAt: chat.activityAt, revision: chat.revision
        ))
    }

    init(_ row: ChatSummaryRow) {
        id = row.id.lowercased
        title = row.title
        model = row.model
        system = row.system
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
        buffer.writeStaticString(#","updated_at":"#)
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

struct ModelsResponse: Content {
    struct Model: Content {
        var id: String
        var provider: String
        var `default`: Bool
    }
    var results: [Model]
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
