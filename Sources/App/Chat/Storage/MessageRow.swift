import Foundation
import SQLKit

/// The `messages` row, defined once: each column with what a new message writes into it and how a
/// read fills the contract's `Message`. Every insert, every read of messages and the end of a
/// reply go through it; a new column is added here (and to ``Message``/``MessageResponse`` when
/// they carry it) and in a migration, nowhere else.
enum MessageRow {
    struct Column: Sendable {
        let name: String
        /// What a new message writes.
        let insert: @Sendable (Message, Date) -> any SQLExpression
        /// How a read row fills a `Message` (nil: not read, the column serves the server only).
        let read: (@Sendable (inout MessageResponse, inout ColumnReader) throws -> Void)?

        init(_ name: String, insert: @escaping @Sendable (Message, Date) -> any SQLExpression,
             read: (@Sendable (inout MessageResponse, inout ColumnReader) throws -> Void)?) {
            self.name = name
            self.insert = insert
            self.read = read
        }
    }

    static let columns: [Column] = [
        Column("id", insert: { message, _ in SQLBind(message.id) }, read: { $0.id = try $1.idString() }),
        Column("chat_id", insert: { message, _ in SQLBind(message.$chat.id) }, read: { $0.chatID = try $1.idString() }),
        Column("sequence", insert: { message, _ in SQLBind(message.sequence) }, read: { $0.sequence = try $1.int() }),
        Column("role", insert: { message, _ in SQLBind(message.role.rawValue) }, read: { message, columns in
            guard let role = MessageRole(rawValue: try columns.string()) else { throw ColumnReader.Malformed(description: "unknown role") }
            message.role = role
        }),
        Column("content", insert: { message, _ in SQLBind(message.content) }, read: { $0.content = try $1.string() }),
        Column("attachments", insert: { message, _ in SQLBind(message.attachments.storedJSON) },
               read: { $0.attachments = [FileResponse](storedJSON: try $1.string()) }),
        Column("reasoning", insert: { message, _ in SQLBind(message.reasoning) }, read: { $0.reasoning = try $1.optionalString() }),
        Column("reasoning_signature", insert: { message, _ in SQLBind(message.reasoningSignature) }, read: nil),
        // A message begins without calls; a reply's are written as it makes them (``ReplyStore``).
        Column("tool_calls", insert: { _, _ in SQLBind("[]") }, read: { $0.toolCalls = [ToolCallRecord](storedJSON: try $1.string()) }),
        Column("status", insert: { message, _ in SQLBind(message.status.rawValue) }, read: { message, columns in
            guard let status = MessageStatus(rawValue: try columns.string()) else { throw ColumnReader.Malformed(description: "unknown status") }
            message.status = status
        }),
        Column("model", insert: { message, _ in SQLBind(message.model) }, read: { $0.model = try $1.string() }),
        Column("input_tokens", insert: { message, _ in SQLBind(message.inputTokens) }, read: { $0.inputTokens = try $1.int() }),
        Column("output_tokens", insert: { message, _ in SQLBind(message.outputTokens) }, read: { $0.outputTokens = try $1.int() }),
        Column("cache_read_input_tokens", insert: { message, _ in SQLBind(message.cacheReadInputTokens) },
               read: { $0.cacheReadInputTokens = try $1.int() }),
        Column("cache_creation_input_tokens", insert: { message, _ in SQLBind(message.cacheCreationInputTokens) },
               read: { $0.cacheCreationInputTokens = try $1.int() }),
        Column("usage_estimated", insert: { message, _ in SQLBind(message.usageEstimated) }, read: { $0.usageEstimated = try $1.bool() }),
        Column("omitted_messages", insert: { message, _ in SQLBind(message.omittedMessages) }, read: { $0.omittedMessages = try $1.int() }),
        Column("stop_reason", insert: { message, _ in SQLBind(message.stopReason) }, read: { $0.stopReason = try $1.optionalString() }),
        Column("error", insert: { message, _ in SQLBind(message.error) }, read: { $0.error = try $1.optionalString() }),
        Column("heartbeat_at", insert: { message, _ in SQLBind(message.heartbeatAt) }, read: nil),
        Column("reserved_tokens", insert: { message, _ in SQLBind(message.reservedTokens) }, read: nil),
        Column("created_at", insert: { _, now in SQLBind(now) }, read: { $0.createdAt = try $1.optionalDate() }),
        Column("updated_at", insert: { _, now in SQLBind(now) }, read: nil),
        Column("parent_id", insert: { message, _ in SQLBind(message.parentID) }, read: { $0.parentID = try $1.optionalIDString() }),
        Column("is_current", insert: { message, _ in SQLBind(message.isCurrent) }, read: { $0.current = try $1.bool() }),
        Column("version", insert: { message, _ in SQLBind(message.version) }, read: { $0.version = try $1.int() }),
        Column("versions", insert: { message, _ in SQLBind(message.versions) }, read: { $0.versions = try $1.int() }),
    ]

    private static let readers = columns.compactMap(\.read)

    /// The columns a read selects, in the order ``read(_:)`` takes them.
    static let selected = columns.filter { $0.read != nil }.map(\.name)

    /// A row's columns (``selected``, in order) as the contract's `Message`.
    static func read(_ columns: inout ColumnReader) throws -> MessageResponse {
        var message = MessageResponse.blank
        for read in readers { try read(&message, &columns) }
        return message
    }

    /// Inserts `messages`, written at `now`, in one statement (Fluent's create reflects over every
    /// field of each model).
    static func insert(_ messages: [Message], at now: Date, on sql: any SQLDatabase) async throws {
        var insert = sql.insert(into: Message.schema).columns(columns.map(\.name))
        for message in messages {
            message.createdAt = now
            insert = insert.values(columns.map { $0.insert(message, now) })
        }
        try await insert.run()
    }

    /// The writes that end a streaming reply (``ReplyStore/finish(_:_:now:)``).
    static func ending(_ ending: ReplyStore.Ending, at now: Date, _ update: SQLUpdateBuilder) -> SQLUpdateBuilder {
        update
            .set("content", to: SQLBind(ending.text))
            .set("reasoning", to: SQLBind(ending.reasoning))
            .set("reasoning_signature", to: SQLBind(ending.reasoningSignature))
            .set("tool_calls", to: SQLBind(ending.toolCalls.storedJSON))
            .set("status", to: SQLBind(ending.status.rawValue))
            .set("input_tokens", to: SQLBind(ending.usage.inputTokens))
            .set("output_tokens", to: SQLBind(ending.usage.outputTokens))
            .set("cache_read_input_tokens", to: SQLBind(ending.usage.cacheReadInputTokens))
            .set("cache_creation_input_tokens", to: SQLBind(ending.usage.cacheCreationInputTokens))
            .set("usage_estimated", to: SQLBind(ending.usageEstimated))
            .set("omitted_messages", to: SQLBind(ending.omittedMessages))
            .set("stop_reason", to: SQLBind(ending.stopReason))
            .set("error", to: SQLBind(ending.error))
            .set("heartbeat_at", to: SQLLiteral.null)
            .set("reserved_tokens", to: SQLBind(0))
            .set("updated_at", to: SQLBind(now))
    }

    /// `ending` as the message it makes of `announced` (the reply as it began).
    static func ended(_ announced: MessageResponse, _ ending: ReplyStore.Ending) -> MessageResponse {
        var stored = announced
        stored.content = ending.text
        stored.reasoning = ending.reasoning
        stored.toolCalls = ending.toolCalls
        stored.status = ending.status
        stored.inputTokens = ending.usage.inputTokens
        stored.outputTokens = ending.usage.outputTokens
        stored.cacheReadInputTokens = ending.usage.cacheReadInputTokens
        stored.cacheCreationInputTokens = ending.usage.cacheCreationInputTokens
        stored.usageEstimated = ending.usageEstimated
        stored.omittedMessages = ending.omittedMessages
        stored.stopReason = ending.stopReason
        stored.error = ending.error
        return stored
    }
}
