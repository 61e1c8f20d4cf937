import Vapor

/// The contract's `Message`.
struct MessageResponse: Content, Equatable {
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

    enum CodingKeys: String, CodingKey {
        case id, chatID = "chat_id", sequence, role, content, status, model
        case inputTokens = "input_tokens", outputTokens = "output_tokens"
        case cacheReadInputTokens = "cache_read_input_tokens", cacheCreationInputTokens = "cache_creation_input_tokens"
        case omittedMessages = "omitted_messages", stopReason = "stop_reason", error, createdAt = "created_at"
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
    }
}

/// The contract's `ChatSummary`: a chat without its messages. Absent values are `null`.
struct ChatSummaryResponse: Content {
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
            updatedAt: chat.updatedAt, lastMessageAt: chat.lastMessageAt, activityAt: chat.activityAt
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
}

/// A row of `chats` as the list reads it (SQLKit decoding, no Fluent model); the one shape a
/// ``ChatSummaryResponse`` is made from.
struct ChatSummaryRow: Decodable {
    var id: UUID
    var title: String
    var model: String
    var system: String?
    var createdAt: Date?
    var updatedAt: Date?
    var lastMessageAt: Date?
    var activityAt: Date

    enum CodingKeys: String, CodingKey {
        case id, title, model, system
        case createdAt = "created_at", updatedAt = "updated_at", lastMessageAt = "last_message_at", activityAt = "activity_at"
    }
}

/// The contract's `Chat`: the summary's fields and the messages in order.
struct ChatResponse: Content {
    var summary: ChatSummaryResponse
    var messages: [MessageResponse]

    private enum CodingKeys: String, CodingKey { case messages }

    init(_ chat: Chat, messages: [MessageResponse]) throws {
        summary = try ChatSummaryResponse(chat)
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
}

struct ChatListResponse: Content {
    var results: [ChatSummaryResponse]
    /// Pass as `cursor` for the next page; null on the last one.
    var next: String?
}

struct SendResponse: Content {
    var userMessage: MessageResponse
    var assistantMessage: MessageResponse

    enum CodingKeys: String, CodingKey {
        case userMessage = "user_message", assistantMessage = "assistant_message"
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
