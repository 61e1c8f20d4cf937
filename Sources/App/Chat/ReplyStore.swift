import Fluent
import Foundation
import Providers
import SQLKit
import Vapor

/// The database side of replies: the conversation sent upstream, and every write to a reply's
/// message. Writes to a streaming message are conditional on it still streaming, so that whichever
/// instance or path ends a reply first wins and the others let go.
struct ReplyStore: Sendable {
    let database: @Sendable () -> any Database

    struct Ending {
        var status: MessageStatus
        var text: String
        var usage: ModelUsage
        var stopReason: String?
        var error: String?
    }

    /// The chat's conversation before `job`'s reply, as the model is to see it: messages in order,
    /// failed and cancelled replies left out, turns of the same role run together.
    func request(for job: ReplyRunner.Job, maxTokens: Int) async throws -> ModelRequest {
        let rows = try await sql(database()).select()
            .columns("role", "status", "content")
            .from(Message.schema)
            .where("chat_id", .equal, SQLBind(job.chatID))
            .where("sequence", .lessThan, SQLBind(job.sequence))
            .orderBy("sequence")
            .all()
        var turns: [ModelMessage] = []
        for row in rows {
            let role = try row.decode(column: "role", as: String.self)
            let status = try row.decode(column: "status", as: String.self)
            if role == MessageRole.assistant.rawValue && status != MessageStatus.complete.rawValue { continue }
            let content = try row.decode(column: "content", as: String.self)
            let turnRole: ModelMessage.Role = role == MessageRole.user.rawValue ? .user : .assistant
            if let last = turns.last, last.role == turnRole {
                turns[turns.count - 1].content += "\n\n" + content
            } else {
                turns.append(ModelMessage(role: turnRole, content: content))
            }
        }
        return ModelRequest(model: job.model, system: job.system, messages: turns, maxTokens: maxTokens)
    }

    /// Stores how the reply ended; nil when the message is gone (its chat was deleted). When another
    /// path ended it first, answers the message as that path stored it.
    func finish(_ job: ReplyRunner.Job, _ ending: Ending, now: Date) async throws -> MessageResponse? {
        let db = try sql(database())
        let won = try await db.update(Message.schema)
            .set("content", to: SQLBind(ending.text))
            .set("status", to: SQLBind(ending.status.rawValue))
            .set("input_tokens", to: SQLBind(ending.usage.inputTokens))
            .set("output_tokens", to: SQLBind(ending.usage.outputTokens))
            .set("stop_reason", to: SQLBind(ending.stopReason))
            .set("error", to: SQLBind(ending.error))
            .set("heartbeat_at", to: SQLLiteral.null)
            .set("updated_at", to: SQLBind(now))
            .where("id", .equal, SQLBind(job.messageID))
            .where("status", .equal, SQLBind(MessageStatus.streaming.rawValue))
            .returning("id")
            .all()
        guard !won.isEmpty else {
            // Ended by another path first (or deleted): answer it as stored.
            return try await Message.find(job.messageID, on: database()).map(MessageResponse.init)
        }
        let activity = now.atDatabasePrecision
        try await db.update(Chat.schema)
            .set("last_message_at", to: SQLBind(activity))
            .set("activity_at", to: SQLBind(activity))
            .where("id", .equal, SQLBind(job.chatID))
            .run()
        var stored = job.announced
        stored.content = ending.text
        stored.status = ending.status
        stored.inputTokens = ending.usage.inputTokens
        stored.outputTokens = ending.usage.outputTokens
        stored.stopReason = ending.stopReason
        stored.error = ending.error
        return stored
    }

    /// Saves a streaming reply's text (when `text` is given) and heartbeat; false when the message
    /// is no longer streaming (ended elsewhere, or deleted).
    func checkpoint(_ messageID: UUID, text: String?, now: Date) async throws -> Bool {
        var update = try sql(database()).update(Message.schema).set("heartbeat_at", to: SQLBind(now))
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
        let db = database()
        let rows = try await sql(db).update(Message.schema)
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
        return try await Message.query(on: db).filter(\.$id ~~ rows).all().map(MessageResponse.init)
    }

    /// Cancels a reply left streaming in `chat` that no instance is running, keeping its saved text.
    func cancelOrphan(in chat: UUID, now: Date) async throws -> MessageResponse? {
        let db = database()
        let rows = try await sql(db).update(Message.schema)
            .set("status", to: SQLBind(MessageStatus.cancelled.rawValue))
            .set("heartbeat_at", to: SQLLiteral.null)
            .set("updated_at", to: SQLBind(now))
            .where("chat_id", .equal, SQLBind(chat))
            .where("status", .equal, SQLBind(MessageStatus.streaming.rawValue))
            .returning("id")
            .all(decodingColumn: "id", as: UUID.self)
        guard let id = rows.first else { return nil }
        return try await Message.find(id, on: db).map(MessageResponse.init)
    }

    private func sql(_ db: any Database) throws -> any SQLDatabase {
        guard let sql = db as? any SQLDatabase else { throw HTTPProblem(.internalServerError, detail: "The database does not speak SQL.") }
        return sql
    }
}
