import Vapor

/// The contract's `Message`. Read from the database by ``MessageRow``, announced on streams, sent
/// in responses; every field is always present (absent values are `null`).
struct MessageResponse: Codable, Equatable, JSONResponse {
    var id: String
    var chatID: String
    var sequence: Int
    var role: MessageRole
    var content: String
    /// The files the user attached.
    var attachments: [FileResponse]
    /// A reply's reasoning, apart from its answer; nil when it has none.
    var reasoning: String?
    var status: MessageStatus
    var model: String
    var inputTokens: Int
    var outputTokens: Int
    var cacheReadInputTokens: Int
    var cacheCreationInputTokens: Int
    /// The usage is the server's estimate, not the provider's figures (a reply cut short, a provider
    /// that reports none).
    var usageEstimated: Bool
    var omittedMessages: Int
    var stopReason: String?
    var error: String?
    /// The tools a reply called, in order, with their results.
    var toolCalls: [ToolCallRecord] = []
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
        case id, chatID = "chat_id", sequence, role, content, attachments, reasoning, status, model
        case inputTokens = "input_tokens", outputTokens = "output_tokens"
        case cacheReadInputTokens = "cache_read_input_tokens", cacheCreationInputTokens = "cache_creation_input_tokens"
        case usageEstimated = "usage_estimated"
        case omittedMessages = "omitted_messages", stopReason = "stop_reason", error, createdAt = "created_at"
        case toolCalls = "tool_calls"
        case parentID = "parent_id", current, version, versions
    }

    /// A message with nothing in it yet, for ``MessageRow`` to fill column by column.
    static let blank = MessageResponse(
        id: "", chatID: "", sequence: 0, role: .user, content: "", attachments: [], reasoning: nil, status: .complete, model: "", inputTokens: 0, outputTokens: 0,
        cacheReadInputTokens: 0, cacheCreationInputTokens: 0, usageEstimated: false, omittedMessages: 0, stopReason: nil, error: nil,
        createdAt: nil, parentID: nil, current: true, version: 1, versions: 1
    )

    /// Every field is always present; absent values are `null`.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(attachments, forKey: .attachments)
        try container.encode(chatID, forKey: .chatID)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(role, forKey: .role)
        try container.encode(content, forKey: .content)
        try container.encode(reasoning, forKey: .reasoning)
        try container.encode(status, forKey: .status)
        try container.encode(model, forKey: .model)
        try container.encode(inputTokens, forKey: .inputTokens)
        try container.encode(outputTokens, forKey: .outputTokens)
        try container.encode(cacheReadInputTokens, forKey: .cacheReadInputTokens)
        try container.encode(cacheCreationInputTokens, forKey: .cacheCreationInputTokens)
        try container.encode(usageEstimated, forKey: .usageEstimated)
        try container.encode(omittedMessages, forKey: .omittedMessages)
        try container.encode(stopReason, forKey: .stopReason)
        try container.encode(error, forKey: .error)
        try container.encode(toolCalls.map(ToolCallRecord.Contract.init), forKey: .toolCalls)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(parentID, forKey: .parentID)
        try container.encode(current, forKey: .current)
        try container.encode(version, forKey: .version)
        try container.encode(versions, forKey: .versions)
    }

    /// The same bytes as ``encode(to:)`` through ``JSONCoding``, without `Codable` (the stream's hot path).
    func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"attachments":"#)
        attachments.writeJSON(into: &buffer)
        buffer.writeStaticString(#","cache_creation_input_tokens":"#)
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
        buffer.writeStaticString(#","reasoning":"#)
        buffer.writeJSONString(reasoning)
        buffer.writeStaticString(#","role":"#)
        buffer.writeJSONString(role.rawValue)
        buffer.writeStaticString(#","sequence":"#)
        buffer.writeJSONInt(sequence)
        buffer.writeStaticString(#","status":"#)
        buffer.writeJSONString(status.rawValue)
        buffer.writeStaticString(#","stop_reason":"#)
        buffer.writeJSONString(stopReason)
        buffer.writeStaticString(#","tool_calls":["#)
        for (index, call) in toolCalls.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            call.writeJSON(into: &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
        buffer.writeStaticString(usageEstimated ? #","usage_estimated":true"# : #","usage_estimated":false"#)
        buffer.writeStaticString(#","version":"#)
        buffer.writeJSONInt(version)
        buffer.writeStaticString(#","versions":"#)
        buffer.writeJSONInt(versions)
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// The reply as it was when it began: streaming, no text, no usage yet.
    var asBegun: MessageResponse {
        var begun = self
        begun.status = .streaming
        begun.content = ""
        begun.reasoning = nil
        begun.toolCalls = []
        (begun.inputTokens, begun.outputTokens, begun.cacheReadInputTokens, begun.cacheCreationInputTokens) = (0, 0, 0, 0)
        begun.usageEstimated = false
        (begun.stopReason, begun.error) = (nil, nil)
        return begun
    }

    /// A message just written (through ``MessageRow``), as a response.
    init(_ message: Message) throws {
        self = Self.blank
        id = try message.requireID().lowercased
        chatID = message.$chat.id.lowercased
        sequence = message.sequence
        role = message.role
        content = message.content
        attachments = message.attachments
        reasoning = message.reasoning
        status = message.status
        model = message.model
        inputTokens = message.inputTokens
        outputTokens = message.outputTokens
        cacheReadInputTokens = message.cacheReadInputTokens
        cacheCreationInputTokens = message.cacheCreationInputTokens
        usageEstimated = message.usageEstimated
        omittedMessages = message.omittedMessages
        stopReason = message.stopReason
        error = message.error
        createdAt = message.createdAt
        parentID = message.parentID?.lowercased
        current = message.isCurrent
        version = message.version
        versions = message.versions
    }

    private init(id: String, chatID: String, sequence: Int, role: MessageRole, content: String, attachments: [FileResponse], reasoning: String?,
                 status: MessageStatus, model: String,
                 inputTokens: Int, outputTokens: Int, cacheReadInputTokens: Int, cacheCreationInputTokens: Int, usageEstimated: Bool,
                 omittedMessages: Int, stopReason: String?, error: String?, createdAt: Date?, parentID: String?, current: Bool,
                 version: Int, versions: Int) {
        (self.id, self.chatID, self.sequence, self.role, self.content, self.reasoning, self.status, self.model) =
            (id, chatID, sequence, role, content, reasoning, status, model)
        self.attachments = attachments
        (self.inputTokens, self.outputTokens, self.cacheReadInputTokens, self.cacheCreationInputTokens, self.usageEstimated) =
            (inputTokens, outputTokens, cacheReadInputTokens, cacheCreationInputTokens, usageEstimated)
        (self.omittedMessages, self.stopReason, self.error, self.createdAt, self.parentID) = (omittedMessages, stopReason, error, createdAt, parentID)
        (self.current, self.version, self.versions) = (current, version, versions)
    }
}
