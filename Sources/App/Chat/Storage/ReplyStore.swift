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
    let attachments: Attachments
    let kind: DatabaseKind

    struct Ending {
        var status: MessageStatus
        var text: String
        var usage: ModelUsage
        /// `usage` is the server's estimate, not the provider's figures.
        var usageEstimated: Bool
        /// The reply's reasoning (nil: none), and the provider's signature of it.
        var reasoning: String?
        var reasoningSignature: String?
        var toolCalls: [ToolCallRecord] = []
        var stopReason: String?
        var error: String?
        var omittedMessages: Int
    }

    /// The request for `job`'s reply, how many earlier messages it leaves out, and how many tokens
    /// its prompt is estimated at.
    struct PreparedRequest {
        var model: ModelRequest
        var omittedMessages: Int
        var promptEstimate: Int
    }

    /// The chat's current conversation before `job`'s reply, as the model is to see it: messages in order,
    /// failed and cancelled replies left out, turns of the same role run together, as much of it
    /// as fits the model's context (``ConversationWindow``).
    /// `model` is the model's own name at its provider.
    func request(for job: ReplyJob, model: String, catalog: ModelCatalog) async throws -> PreparedRequest {
        let db = try database()
        let rows = try await db.sql().select()
            .columns("role", "status", "content", "attachments")
            .from(Message.schema)
            .where("chat_id", .equal, SQLBind(job.chatID))
            .where("is_current", .equal, SQLLiteral.boolean(true))
            .where("sequence", .lessThan, SQLBind(job.sequence))
            .orderBy("sequence")
            .all()
        var turns: [ConversationWindow.Turn] = []
        var attached: [(turn: Int, ids: [UUID])] = []
        for row in rows {
            let role = try row.decode(column: "role", as: String.self)
            let status = try row.decode(column: "status", as: String.self)
            if role == MessageRole.assistant.rawValue && status != MessageStatus.complete.rawValue { continue }
            let content = try row.decode(column: "content", as: String.self)
            let turnRole: ModelMessage.Role = role == MessageRole.user.rawValue ? .user : .assistant
            if let last = turns.last, last.role == turnRole {
                turns[turns.count - 1].content += content.isEmpty ? "" : (last.content.isEmpty ? "" : "\n\n") + content
                turns[turns.count - 1].messages += 1
            } else {
                turns.append(ConversationWindow.Turn(role: turnRole, content: content, messages: 1))
            }
            let ids = [FileResponse](storedJSON: try row.decode(column: "attachments", as: String.self)).compactMap { UUID(uuidString: $0.id) }
            if !ids.isEmpty { attached.append((turns.count - 1, ids)) }
        }
        if !attached.isEmpty {
            // The files as stored now (a message lists them; `files` holds what the model needs).
            let records = Dictionary(try await attachments.files.records(attached.flatMap(\.ids), ownedBy: job.userID, on: db)
                .map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            for (turn, ids) in attached {
                turns[turn].files += ids.compactMap { records[$0] }
            }
        }
        let systemTokens = job.system.map(ConversationWindow.estimatedTokens) ?? 0
        let window = ConversationWindow(turns, budget: catalog.contextWindow(of: job.model) - catalog.maxTokens - systemTokens,
                                        pageBudget: catalog.readsDocumentsAsClaude(job.model) ? Attachments.anthropicMaxPDFPages : .max)
        var messages = window.messages(caching: catalog.promptCaching)
        for (index, turn) in window.turns.enumerated() where !turn.files.isEmpty {
            for file in turn.files {
                messages[index].attachments.append(try await attachments.forModel(file, model: job.model, on: db))
            }
        }
        let request = ModelRequest(model: model, system: job.system, messages: messages,
                                   maxTokens: catalog.maxTokens, cachesPrompt: catalog.promptCaching,
                                   thinkingBudget: catalog.thinkingBudget(of: job.model))
        return PreparedRequest(model: request, omittedMessages: window.omittedMessages,
                               promptEstimate: window.estimatedTokens + systemTokens)
    }

    /// Stores how the reply ended; nil when the message is gone (its chat was deleted: its usage is
    /// recorded all the same, for its user). When another path ended it first, answers the message
    /// as that path stored it.
    func finish(_ job: ReplyJob, _ ending: Ending, now: Date) async throws -> MessageResponse? {
        // One transaction: the end, its usage and the chat's activity are stored together, by
        // whichever path ends the reply first, or not at all.
        let won: Bool
        do {
            try await database().transaction { tx in try await storeEnd(job, ending, now: now, on: try tx.sql()) }
            won = true
        } catch is NoLongerStreaming {
            won = false
        }
        guard won else {
            // Ended by another path first, which counted it — or deleted with its chat: counted here.
            guard let stored = try await message(job.messageID) else {
                try await UsageLedger.record(ending.usage, model: job.model, for: .user(job.userID), at: now, on: try database().sql())
                return nil
            }
            return stored
        }
        return MessageRow.ended(job.announced, ending)
    }

    /// The writes of ``finish(_:_:now:)``; throws ``NoLongerStreaming`` (rolling them back) when the
    /// reply was no longer streaming. They lock in the order deletions do — the account, then the
    /// chat's row, then its message (the usage it adds needs the account too) — so that a reply's end
    /// and a deletion of its chat or account wait for each other but never deadlock.
    private func storeEnd(_ job: ReplyJob, _ ending: Ending, now: Date, on db: any SQLDatabase) async throws {
        try await db.holdAccount(job.userID, on: kind)
        let activity = now.atDatabasePrecision
        try await db.update(Chat.schema)
            .set("last_message_at", to: SQLBind(activity))
            .set("activity_at", to: SQLBind(activity))
            .where("id", .equal, SQLBind(job.chatID))
            .run()
        let won = try await MessageRow.ending(ending, at: now, db.update(Message.schema))
            .where("id", .equal, SQLBind(job.messageID))
            .where("status", .equal, SQLBind(MessageStatus.streaming.rawValue))
            .returning("id")
            .all()
        guard !won.isEmpty else { throw NoLongerStreaming() }
        try await UsageLedger.record(ending.usage, model: job.model, for: .user(job.userID), at: now, on: db)
    }

    /// The reply was ended by another path first, or deleted with its chat.
    private struct NoLongerStreaming: Error {}

    /// Saves a streaming reply's text (when `text` is given) and heartbeat; false when the message
    /// is no longer streaming (ended elsewhere, or deleted).
    func checkpoint(_ messageID: UUID, text: String?, reasoning: String? = nil, toolCalls: [ToolCallRecord]? = nil,
                    now: Date) async throws -> Bool {
        var update = try database().sql().update(Message.schema).set("heartbeat_at", to: SQLBind(now))
        if let text { update = update.set("content", to: SQLBind(text)) }
        if let reasoning { update = update.set("reasoning", to: SQLBind(reasoning)) }
        if let toolCalls { update = update.set("tool_calls", to: SQLBind(toolCalls.storedJSON)) }
        let rows = try await update
            .where("id", .equal, SQLBind(messageID))
            .where("status", .equal, SQLBind(MessageStatus.streaming.rawValue))
            .returning("id")
            .all()
        return !rows.isEmpty
    }

    /// Fails every streaming reply whose heartbeat is older than `cutoff`: its server is gone.
    func failAbandoned(olderThan cutoff: Date, now: Date) async throws -> [MessageResponse] {
        try await endOrphans(as: .failed, error: "The reply was interrupted: the server handling it stopped.", now: now) { update in
            update.where(SQLGroupExpression(SQLBinaryExpression(
                left: SQLBinaryExpression(left: SQLColumn("heartbeat_at"), op: SQLBinaryOperator.lessThan, right: SQLBind(cutoff)),
                op: SQLBinaryOperator.or,
                right: SQLBinaryExpression(left: SQLColumn("heartbeat_at"), op: SQLBinaryOperator.is, right: SQLLiteral.null)
            )))
        }
    }

    /// The result of a call that never came back, for a reply ended as `status` by another path.
    static func unfinishedCall(_ status: MessageStatus) -> String {
        status == .cancelled ? "The reply was stopped during the call." : "The call was interrupted: the server handling the reply stopped."
    }

    /// Cancels a reply left streaming in `chat` that no instance is running, keeping its saved text.
    func cancelOrphan(in chat: UUID, now: Date) async throws -> MessageResponse? {
        try await endOrphans(as: .cancelled, error: nil, now: now) { $0.where("chat_id", .equal, SQLBind(chat)) }.first
    }

    /// Ends the streaming replies `filter` selects, which no instance runs any more, as `status`,
    /// keeping their saved text; their usage — unknown, their server is gone — is estimated (the
    /// prompt as it was reserved, the output from the saved text) and recorded, in the same transaction.
    private func endOrphans(as status: MessageStatus, error: String?, now: Date,
                            _ filter: @escaping @Sendable (SQLUpdateBuilder) -> SQLUpdateBuilder) async throws -> [MessageResponse] {
        let ended = try await database().transaction { tx -> [UUID] in
            let sql = try tx.sql()
            let rows = try await filter(sql.update(Message.schema)
                .set("status", to: SQLBind(status.rawValue))
                .set("error", to: SQLBind(error))
                .set("heartbeat_at", to: SQLLiteral.null)
                .set("updated_at", to: SQLBind(now))
                .where("status", .equal, SQLBind(MessageStatus.streaming.rawValue)))
                .returning("id", "chat_id", "model", "content", "reasoning", "reserved_tokens", "tool_calls")
                .all()
            var ids: [UUID] = []
            for row in rows {
                let id = try row.decode(column: "id", as: UUID.self)
                ids.append(id)
                // A call in flight when the reply's server went is kept, and says so.
                var calls = [ToolCallRecord](storedJSON: try row.decode(column: "tool_calls", as: String.self))
                if calls.contains(where: { $0.result == nil }) {
                    for index in calls.indices where calls[index].result == nil {
                        (calls[index].result, calls[index].isError) = (Self.unfinishedCall(status), true)
                    }
                    try await sql.update(Message.schema).set("tool_calls", to: SQLBind(calls.storedJSON)).where("id", .equal, SQLBind(id)).run()
                }
                let content = try row.decode(column: "content", as: String.self)
                let reasoning = try row.decode(column: "reasoning", as: String?.self) ?? ""
                let output = ReplyUsage.estimatedTokens(content) + ReplyUsage.estimatedTokens(reasoning)
                guard output > 0 else { continue }
                let usage = ModelUsage(inputTokens: try row.decode(column: "reserved_tokens", as: Int.self), outputTokens: output)
                try await sql.update(Message.schema)
                    .set("input_tokens", to: SQLBind(usage.inputTokens)).set("output_tokens", to: SQLBind(usage.outputTokens))
                    .set("usage_estimated", to: SQLLiteral.boolean(true)).set("reserved_tokens", to: SQLBind(0))
                    .where("id", .equal, SQLBind(id)).run()
                try await UsageLedger.record(usage, model: try row.decode(column: "model", as: String.self),
                                             for: .ownerOf(chat: try row.decode(column: "chat_id", as: UUID.self)), at: now, on: sql)
            }
            return ids
        }
        var messages: [MessageResponse] = []
        for id in ended { if let message = try await message(id) { messages.append(message) } }
        return messages
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
        try await ChatReads.message(id, on: database())
    }
}
