import Fluent
import Foundation
import SQLKit

enum MessageRole: String, Codable, Sendable {
    case user
    case assistant
}

enum MessageStatus: String, Codable, Sendable {
    case complete
    case streaming
    case failed
    case cancelled
}

/// One turn of a chat. An assistant reply is `streaming` while it arrives (its text saved now and
/// then, `heartbeatAt` proving its server alive) and ends `complete`, `failed` or `cancelled`.
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class Message: Model, @unchecked Sendable {
    static let schema = "messages"

    @ID(key: .id) var id: UUID?
    @Parent(key: "chat_id") var chat: Chat
    @Field(key: "sequence") var sequence: Int
    @Field(key: "role") var role: MessageRole
    @Field(key: "content") var content: String
    /// A reply's reasoning, kept apart from its answer; nil when it had none.
    @OptionalField(key: "reasoning") var reasoning: String?
    /// The provider's signature of the reasoning (Anthropic's), for a later request to send back.
    @OptionalField(key: "reasoning_signature") var reasoningSignature: String?
    @Field(key: "status") var status: MessageStatus
    @Field(key: "model") var model: String
    @Field(key: "input_tokens") var inputTokens: Int
    @Field(key: "output_tokens") var outputTokens: Int
    @Field(key: "cache_read_input_tokens") var cacheReadInputTokens: Int
    @Field(key: "cache_creation_input_tokens") var cacheCreationInputTokens: Int
    /// The usage is the server's estimate (a reply cut short, a provider that reports none).
    @Field(key: "usage_estimated") var usageEstimated: Bool
    /// While a reply streams: the tokens its prompt is estimated at, held against its user's daily
    /// quota until it ends (``UsageLedger``); 0 otherwise.
    @Field(key: "reserved_tokens") var reservedTokens: Int
    /// Earlier messages left out of the reply's request to fit the model's context.
    @Field(key: "omitted_messages") var omittedMessages: Int
    @OptionalField(key: "stop_reason") var stopReason: String?
    @OptionalField(key: "error") var error: String?
    @OptionalField(key: "heartbeat_at") var heartbeatAt: Date?
    /// The message this one follows (nil for a chat's first): a chat's messages form a tree, whose
    /// current branch is the conversation.
    @OptionalField(key: "parent_id") var parentID: UUID?
    /// In the chat's current conversation (else an earlier version, or what followed one).
    @Field(key: "is_current") var isCurrent: Bool
    /// Its number among the messages that follow the same message with the same role, from 1.
    @Field(key: "version") var version: Int
    /// How many such messages there are.
    @Field(key: "versions") var versions: Int
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    /// The files the user attached (`messages.attachments`, written by ``MessageRow``; which
    /// files a message uses is also kept in `message_files`).
    var attachments: [FileResponse] = []
    @Timestamp(key: "updated_at", on: .update) var updatedAt: Date?

    init() {}

    init(chatID: UUID, sequence: Int, role: MessageRole, content: String, status: MessageStatus, model: String, heartbeatAt: Date? = nil,
         parentID: UUID? = nil, version: Int = 1) {
        self.id = UUID()
        self.$chat.id = chatID
        self.sequence = sequence
        self.role = role
        self.content = content
        self.status = status
        self.model = model
        self.inputTokens = 0
        self.outputTokens = 0
        self.cacheReadInputTokens = 0
        self.cacheCreationInputTokens = 0
        self.usageEstimated = false
        self.reservedTokens = 0
        self.omittedMessages = 0
        self.heartbeatAt = heartbeatAt
        self.parentID = parentID
        self.isCurrent = true
        self.version = version
        self.versions = version
    }
}
