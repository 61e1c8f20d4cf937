import Fluent
import Foundation
import Providers
import SQLKit
import Vapor

/// The database side of replies: the conversation sent upstream, and every write to a reply's
/// message. Writes to a streaming message are conditional on it still streaming, so that whichever
/// instance or path ends a reply first wins and the others let go.
struct ReplyStore: Sendable {
    let database: DatabaseAccess

    struct Ending {
        var status: MessageStatus
        var text: String
        var usage: ModelUsage
        var stopReason: String?
        var error: String?
        var omittedMessages: Int
    }

    /// The request for `job`'s reply, and how many earlier messages it leaves out.
    struct PreparedRequest {
        var model: ModelRequest
        var omittedMessages: Int
    }

    /// The chat's current conversation before `job`'s reply, as the model is to see it: messages in order,
    /// failed and cancelled replies left out, turns of the same role run together, as much of it
    /// as fits the model's context (``ConversationWindow``).
    func request(for job: ReplyJob, catalog: ModelCatalog) async throws -> PreparedRequest {
        let rows = try await database().sql().select()
            .columns("role", "status", "content")
            .from(Message.schema)
            .where("chat_id", .equal, SQLBind(job.chatID))
            .where("is_current", .equal, SQLLiteral.boolean(true))
            .where("sequence", .lessThan, SQLBind(job.sequence))
            .orderBy("sequence")
            .all()
        var turns: [ConversationWindow.Turn] = []
        for row in rows {
            let role = try row.decode(column: "role", as: String.self)
            let status = try row.decode(column: "status", as: String.self)
            if role == MessageRole.assistant.rawValue && status != MessageStatus.complete.rawValue { continue }
            let content = try row.decode(column: "content", as: String.self)
            let turnRole: ModelMessage.Role = role == MessageRole.user.rawValue ? .user : .assistant
            if let last = turns.last, last.role == turnRole {
                turns[turns.count - 1].content += "\n\n" + content
                turns[turns.count - 1].messages += 1
            } else {
                turns.append(ConversationWindow.Turn(role: turnRole, content: content, messages: 1))
            }
        }
        let systemTokens = job.system.map(ConversationWindow.estimatedTokens) ?? 0
        let window = ConversationWindow(turns, budget: catalog.contextWindow(of: job.model) - catalog.maxTokens - systemTokens)
        let request = ModelRequest(model: job.model, system: job.system, messages: window.messages(caching: catalog.promptCaching),
                                   maxTokens: catalog.maxTokens, cachesPrompt: catalog.promptCaching)
        return PreparedRequest(model: request, omittedMessages: window.omittedMessages)
    }

    /// Stores how the reply ended; nil when the message is gone (its chat was deleted). When another
    /// path ended it first, answers the message as that path stored it.
    func finish(_ job: ReplyJob, _ ending: Ending, now: Date) async throws -> MessageResponse? {
        // One transaction: the end, its search entry, its usage and the chat's activity are stored
        // together, by whichever path ends the reply first, or not at all.
        let won = try await database().transaction { tx in try await storeEnd(job, ending, now: now, on: try tx.sql()) }
        guard won else {
            // Ended by another path first (or deleted): answer it as stored.
            return try await message(job.messageID)
        }
        var stored = job.announced
        stored.content = ending.text
        stored.status = ending.status
        stored.inputTokens = ending.usage.inputTokens
        stored.outputTokens = ending.usage.outputTokens
        stored.cacheReadInputTokens = ending.usage.cacheReadInputTokens
        stored.cacheCreationInputTokens = ending.usage.cacheCreationInputTokens
        stored.omittedMessages = ending.omittedMessages
        stored.stopReason = ending.stopReason
        stored.error = ending.error
        return stored
    }

    /// The writes of ``finish(_:_:now:)``; false when the reply was no longer streaming.
    private func storeEnd(_ job: ReplyJob, _ ending: Ending, now: Date, on db: any SQLDatabase) async throws -> Bool {
        let won = try await db.update(Message.schema)
            .set("content", to: SQLBind(ending.text))
            .set("status", to: SQLBind(ending.status.rawValue))
            .set("input_tokens", to: SQLBind(ending.usage.inputTokens))
            .set("output_tokens", to: SQLBind(ending.usage.outputTokens))
            .set("cache_read_input_tokens", to: SQLBind(ending.usage.cacheReadInputTokens))
            .set("cache_creation_input_tokens", to: SQLBind(ending.usage.cacheCreationInputTokens))
            .set("omitted_messages", to: SQLBind(ending.omittedMessages))
            .set("stop_reason", to: SQLBind(ending.stopReason))
            .set("error", to: SQLBind(ending.error))
            .set("heartbeat_at", to: SQLLiteral.null)
            .set("updated_at", to: SQLBind(now))
            .where("id", .equal, SQLBind(job.messageID))
            .where("status", .equal, SQLBind(MessageStatus.streaming.rawValue))
            .returning("id")
            .all()
        guard !won.isEmpty else { return false }
        try await ChatSearch.indexMessage(job.messageID, chat: job.chatID, text: ending.text, on: db)
        try await UsageLedger.record(ending.usage, model: job.model, chat: job.chatID, at: now, on: db)
        let activity = now.atDatabasePrecision
        try await db.update(Chat.schema)
            .set("last_message_at", to: SQLBind(activity))
            .set("activity_at", to: SQLBind(activity))
            .where("id", .equal, SQLBind(job.chatID))
            .run()
        return true
    }

    /// Saves a streaming reply's text (when `text` is given) and heartbeat; false when the message
    /// is no longer streaming (ended elsewhere, or deleted).
    func checkpoint(_ messageID: UUID, text: String?, now: Date) async throws -> Bool {
        var update = try database().sql().update(Message.schema).set("heartbeat_at", to: SQLBind(now))
        if let text { update = update.set("content", to: SQLBind(text)) }
        let rows = try await update
            .where("id", .equal, SQLBind(messageID))
            .where("status", .equal, SQLBind(MessageStatus.streaming.rawValue))
            .returning("id")
            .all()
        return !rows.isEmpty
    }

    /// Fails every streaming reply whose heartbeat is older than `cutoff`: its server is gone.
    func failAbandoned(olderThan cutoff: Date, now: Date) async throws -> [MessageResponse] {
        let rows = try await database().sql().update(Message.schema)
            .set("status", to: SQLBind(MessageStatus.failed.rawValue))
            .set("error", to: SQLBind("The reply was interrupted: the server handling it stopped."))
            .set("heartbeat_at", to: SQLLiteral.null)
            .set("updated_at", to: SQLBind(now))
            .where("status", .equal, SQLBind(MessageStatus.streaming.rawValue))
            .where(SQLGroupExpression(SQLBinaryExpression(
                left: SQLBinaryExpression(left: SQLColumn("heartbeat_at"), op: SQLBinaryOperator.lessThan, right: SQLBind(cutoff)),
                op: SQLBinaryOperator.or,
                right: SQLBinaryExpression(left: SQLColumn("heartbeat_at"), op: SQLBinaryOperator.is, right: SQLLiteral.null)
            )))
            .returning("id")
            .all(decodingColumn: "id", as: UUID.self)
        guard !rows.isEmpty else { return [] }
        let failed = try await Message.query(on: database()).filter(\.$id ~~ rows).all()
        for message in failed {
            try await ChatSearch.indexMessage(try message.requireID(), chat: message.$chat.id, text: message.content, on: try database().sql())
        }
        return try failed.map(MessageResponse.init)
    }

    /// Cancels a reply left streaming in `chat` that no instance is running, keeping its saved text.
    func cancelOrphan(in chat: UUID, now: Date) async throws -> MessageResponse? {
        let rows = try await database().sql().update(Message.schema)
            .set("status", to: SQLBind(MessageStatus.cancelled.rawValue))
            .set("heartbeat_at", to: SQLLiteral.null)
            .set("updated_at", to: SQLBind(now))
            .where("chat_id", .equal, SQLBind(chat))
            .where("status", .equal, SQLBind(MessageStatus.streaming.rawValue))
            .returning("id")
            .all(decodingColumn: "id", as: UUID.self)
        guard let id = rows.first else { return nil }
        guard let stopped = try await message(id) else { return nil }
        try await ChatSearch.indexMessage(id, chat: chat, text: stopped.content, on: try database().sql())
        return stopped
    }

    /// The id of the reply streaming in `chat`, if any.
    func streamingReply(in chat: UUID) async throws -> UUID? {
        try await Message.query(on: database()).filter(\.$chat.$id == chat).filter(\.$status == .streaming).first()?.id
    }

    /// Waits (up to `limit`) for reply `id` to be stored as ended, by whichever instance runs it;
    /// the message as stored, or nil when it did not end in time.
    func awaitEnd(of id: UUID, within limit: Duration) async throws -> MessageResponse? {
        let deadline = ContinuousClock.now + limit
        while true {
            if let stored = try await message(id), stored.status != .streaming { return stored }
            guard ContinuousClock.now < deadline else { return nil }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A message as stored; nil when it is gone.
    func message(_ id: UUID) async throws -> MessageResponse? {
        try await Message.find(id, on: database()).map(MessageResponse.init)
    }
}
