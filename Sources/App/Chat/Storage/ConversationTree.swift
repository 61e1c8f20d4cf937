import Fluent
import Foundation
import SQLKit

/// The writes that shape a chat's message tree, inside one transaction of the chat service: each
/// message follows its parent; the current conversation is the branch whose messages are
/// `is_current`, read in sequence order (a child is always written after its parent, so a branch
/// in sequence order is the conversation in order). Regenerating, editing and switching versions
/// move that branch; nothing is ever deleted but with the chat.
///
/// Every change starts with ``reserve(_:newRevision:at:limit:)``, whose update of the chat's row
/// also orders concurrent changes to the same chat (PostgreSQL locks the row until the commit;
/// SQLite has one writer at a time).
struct ConversationTree {
    let chatID: UUID
    let sql: any SQLDatabase

    /// A message as the tree needs it.
    struct Node: Sendable {
        var id: UUID
        var parentID: UUID?
        var sequence: Int
        var role: MessageRole
        var status: MessageStatus
        var isCurrent: Bool
    }

    /// Takes `count` sequence numbers (the last is `next - 1`) and stamps the chat's activity; with
    /// `newRevision`, moves the conversation's revision on. ``ChatError/chatFull(_:)`` when the chat
    /// has no room for `count` more messages (of `limit`).
    func reserve(_ count: Int, newRevision: Bool, at now: Date, limit: Int) async throws -> (next: Int, revision: Int) {
        var update = sql.update(Chat.schema)
            .set("next_sequence", to: SQLBinaryExpression(left: SQLColumn("next_sequence"), op: SQLBinaryOperator.add,
                                                          right: SQLLiteral.numeric(String(count))))
            .set("activity_at", to: SQLBind(now))
            .set("updated_at", to: SQLBind(now))
            .where("id", .equal, SQLBind(chatID))
        if count > 0 {
            update = update.set("last_message_at", to: SQLBind(now))
                .where("next_sequence", .lessThanOrEqual, SQLBind(limit - count + 1))
        }
        if newRevision {
            update = update.set("revision", to: SQLBinaryExpression(left: SQLColumn("revision"), op: SQLBinaryOperator.add,
                                                                    right: SQLLiteral.numeric("1")))
        }
        let rows = try await update.returning("next_sequence", "revision").all()
        guard let row = rows.first else {
            // No row: the chat is full, or it was deleted since it was read (a delete racing this request).
            let exists = try await sql.select().column("id").from(Chat.schema).where("id", .equal, SQLBind(chatID)).first() != nil
            throw exists ? ChatError.chatFull(limit) : ChatError.chatNotFound
        }
        return (try row.decode(column: "next_sequence", as: Int.self), try row.decode(column: "revision", as: Int.self))
    }

    /// Tokens the current conversation is estimated at (the prompt of its next reply), from its
    /// length: a token per three characters and a few per message (``ConversationWindow``).
    func estimatedTokens() async throws -> Int {
        let row = try await sql.raw("""
            SELECT COUNT(*) AS messages, CAST(COALESCE(SUM(LENGTH(content)), 0) AS BIGINT) AS characters FROM messages
            WHERE chat_id = \(bind: chatID) AND is_current
            """).first()
        let messages = try row?.decode(column: "messages", as: Int.self) ?? 0
        let characters = try row?.decode(column: "characters", as: Int.self) ?? 0
        return (characters + 2) / 3 + 4 * messages
    }

    /// The last message of the current conversation.
    func leaf() async throws -> Node? {
        try await sql.select().columns(Self.nodeColumns).from(Message.schema)
            .where("chat_id", .equal, SQLBind(chatID)).where("is_current", .equal, SQLLiteral.boolean(true))
            .orderBy("sequence", .descending).limit(1)
            .all().map(Self.node).first
    }

    /// The message `id`, if it is this chat's.
    func message(_ id: UUID) async throws -> Node? {
        try await sql.select().columns(Self.nodeColumns).from(Message.schema)
            .where("chat_id", .equal, SQLBind(chatID)).where("id", .equal, SQLBind(id))
            .all().map(Self.node).first
    }

    /// The current conversation from `sequence` on leaves it (becomes an earlier version).
    func leave(from sequence: Int) async throws {
        try await sql.update(Message.schema).set("is_current", to: SQLLiteral.boolean(false))
            .where("chat_id", .equal, SQLBind(chatID))
            .where("is_current", .equal, SQLLiteral.boolean(true))
            .where("sequence", .greaterThanOrEqual, SQLBind(sequence))
            .run()
    }

    /// Counts one more version among the messages of `role` that follow `parent` (nil: the chat's
    /// first question); answers the new one's number.
    func addVersion(role: MessageRole, after parent: UUID?) async throws -> Int {
        var update = sql.update(Message.schema)
            .set("versions", to: SQLBinaryExpression(left: SQLColumn("versions"), op: SQLBinaryOperator.add, right: SQLLiteral.numeric("1")))
            .where("chat_id", .equal, SQLBind(chatID))
            .where("role", .equal, SQLBind(role.rawValue))
        update = parent.map { update.where("parent_id", .equal, SQLBind($0)) } ?? update.where("parent_id", .is, SQLLiteral.null)
        let rows = try await update.returning("versions").all(decodingColumn: "versions", as: Int.self)
        return (rows.max() ?? 0) + (rows.isEmpty ? 1 : 0)
    }

    /// Stores new messages in one statement (Fluent's create reflects over every field of each
    /// model); a second streaming reply in the chat is ``ChatError/replyInProgress``.
    func insert(_ messages: [Message], at now: Date) async throws {
        do {
            try await MessageRow.insert(messages, at: now, on: sql)
        } catch let error as any DatabaseError where error.isConstraintFailure {
            throw ChatError.replyInProgress
        }
    }

    /// Makes `id` current: the branch becomes the way from the first message to it, then on from
    /// it through the newest message at each turn. Not while a reply streams.
    func makeCurrent(_ id: UUID) async throws {
        let all = try await sql.select().columns(Self.nodeColumns).from(Message.schema)
            .where("chat_id", .equal, SQLBind(chatID)).orderBy("sequence").all().map(Self.node)
        guard all.contains(where: { $0.id == id }) else { throw ChatError.messageNotFound }
        guard !all.contains(where: { $0.status == .streaming }) else { throw ChatError.replyInProgress }
        let byID = Dictionary(all.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var newestChild: [UUID: Node] = [:]
        for node in all {
            guard let parent = node.parentID else { continue }
            if let known = newestChild[parent], known.sequence > node.sequence { continue }
            newestChild[parent] = node
        }
        var branch: [UUID] = []
        var cursor = byID[id]
        while let node = cursor {
            branch.append(node.id)
            cursor = node.parentID.flatMap { byID[$0] }
        }
        cursor = newestChild[id]
        while let node = cursor {
            branch.append(node.id)
            cursor = newestChild[node.id]
        }
        try await sql.update(Message.schema).set("is_current", to: SQLLiteral.boolean(false))
            .where("chat_id", .equal, SQLBind(chatID)).where("is_current", .equal, SQLLiteral.boolean(true)).run()
        // In slices: a database takes only so many parameters in one statement.
        for start in stride(from: 0, to: branch.count, by: 500) {
            let slice = branch[start..<min(start + 500, branch.count)]
            try await sql.update(Message.schema).set("is_current", to: SQLLiteral.boolean(true))
                .where("chat_id", .equal, SQLBind(chatID))
                .where("id", .in, SQLBind.group(Array(slice)))
                .run()
        }
    }

    /// Deletes `message` (an admin's act): what followed it follows its parent now, and the
    /// versions at both turns are numbered again. The chat's row is written (its `updated_at`) before
    /// any message: every write to a chat locks its row first (a deletion of the chat, as it cascades,
    /// locks the chat's row and then its messages), so that two never deadlock.
    func remove(_ message: Message, at now: Date) async throws {
        let id = try message.requireID()
        try await sql.update(Chat.schema).set("updated_at", to: SQLBind(now)).where("id", .equal, SQLBind(chatID)).run()
        let children = try await sql.select().column("role").from(Message.schema)
            .where("chat_id", .equal, SQLBind(chatID)).where("parent_id", .equal, SQLBind(id))
            .all(decodingColumn: "role", as: String.self)
        try await sql.update(Message.schema).set("parent_id", to: SQLBind(message.parentID))
            .where("chat_id", .equal, SQLBind(chatID)).where("parent_id", .equal, SQLBind(id)).run()
        try await sql.delete(from: Message.schema).where("id", .equal, SQLBind(id)).run()
        for role in Set([message.role.rawValue] + children).compactMap(MessageRole.init(rawValue:)) {
            try await renumber(role: role, after: message.parentID)
        }
    }

    /// Numbers the versions of `role` that follow `parent` again, 1… in the order they were written.
    private func renumber(role: MessageRole, after parent: UUID?) async throws {
        var query = sql.select().column("id").from(Message.schema)
            .where("chat_id", .equal, SQLBind(chatID)).where("role", .equal, SQLBind(role.rawValue))
        query = parent.map { query.where("parent_id", .equal, SQLBind($0)) } ?? query.where("parent_id", .is, SQLLiteral.null)
        let ids = try await query.orderBy("sequence").all(decodingColumn: "id", as: UUID.self)
        for (index, id) in ids.enumerated() {
            try await sql.update(Message.schema).set("version", to: SQLBind(index + 1)).set("versions", to: SQLBind(ids.count))
                .where("id", .equal, SQLBind(id)).run()
        }
    }

    private static let nodeColumns = ["id", "parent_id", "sequence", "role", "status", "is_current"]

    private static func node(_ row: any SQLRow) throws -> Node {
        guard let role = MessageRole(rawValue: try row.decode(column: "role", as: String.self)),
              let status = MessageStatus(rawValue: try row.decode(column: "status", as: String.self)) else {
            throw ColumnReader.Malformed(description: "unknown role or status")
        }
        return Node(id: try row.decode(column: "id", as: UUID.self), parentID: try row.decode(column: "parent_id", as: UUID?.self),
                    sequence: try row.decode(column: "sequence", as: Int.self), role: role, status: status,
                    isCurrent: try row.decode(column: "is_current", as: Bool.self))
    }
}
