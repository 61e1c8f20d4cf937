import Fluent
import SQLKit

/// Creates `chats`, indexed for "my chats, newest activity first".
struct CreateChats: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Chat.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("title", .string, .required)
            .field("model", .string, .required)
            .field("system", .string)
            .field("next_sequence", .int, .required)
            .field("last_message_at", .datetime)
            .field("activity_at", .datetime, .required)
            .field("created_at", .datetime)
            .field("updated_at", .datetime)
            .create()
        try await database.sql().create(index: "idx_chats_user_activity")
            .on(Chat.schema).column("user_id").column("activity_at").column("id").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Chat.schema).delete()
    }
}

/// Creates `messages`: numbered per chat, deleted with their chat, and at most one reply
/// streaming per chat — enforced by the database, so two servers cannot both start one.
struct CreateMessages: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Message.schema)
            .id()
            .field("chat_id", .uuid, .required, .references(Chat.schema, "id", onDelete: .cascade))
            .field("sequence", .int, .required)
            .field("role", .string, .required)
            .field("content", .string, .required)
            .field("status", .string, .required)
            .field("model", .string, .required)
            .field("input_tokens", .int, .required)
            .field("output_tokens", .int, .required)
            .field("stop_reason", .string)
            .field("error", .string)
            .field("heartbeat_at", .datetime)
            .field("created_at", .datetime)
            .field("updated_at", .datetime)
            .unique(on: "chat_id", "sequence", name: "uq_messages_chat_sequence")
            .create()
        let sql = try database.sql()
        try await sql.raw("""
            CREATE UNIQUE INDEX uq_messages_one_streaming_per_chat ON messages (chat_id) WHERE status = 'streaming'
            """).run()
        try await sql.raw("""
            CREATE INDEX idx_messages_streaming_heartbeat ON messages (heartbeat_at) WHERE status = 'streaming'
            """).run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Message.schema).delete()
    }
}

/// Adds to `messages` the usage a reply's provider reports beyond plain input and output (prompt
/// cache reads and writes), and how many earlier messages its request left out.
struct AddReplyAccounting: AsyncMigration {
    func prepare(on database: any Database) async throws {
        for column in ["cache_read_input_tokens", "cache_creation_input_tokens", "omitted_messages"] {
            try await database.schema(Message.schema).field(.string(column), .int, .required, .sql(.default(0))).update()
        }
    }

    func revert(on database: any Database) async throws {
        for column in ["omitted_messages", "cache_creation_input_tokens", "cache_read_input_tokens"] {
            try await database.schema(Message.schema).deleteField(.string(column)).update()
        }
    }
}

/// Makes a chat's messages a tree, so that regenerating a reply or editing a question keeps what
/// it replaces as an earlier version: each message knows the one it follows (`parent_id`), its
/// number among the messages that follow the same one with the same role (`version` of
/// `versions`), and whether it is in the chat's current conversation (`is_current`), which a
/// partial index keeps one indexed read away. `chats.revision` counts the changes to the current
/// conversation (stream event ids carry it); `chats.needs_title` marks a chat made without a title.
/// Existing messages become one branch: each follows the one before it.
struct AddConversationTree: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Message.schema).field("parent_id", .uuid).update()
        try await database.schema(Message.schema).field("is_current", .bool, .required, .sql(.default(true))).update()
        try await database.schema(Message.schema).field("version", .int, .required, .sql(.default(1))).update()
        try await database.schema(Message.schema).field("versions", .int, .required, .sql(.default(1))).update()
        try await database.schema(Chat.schema).field("revision", .int, .required, .sql(.default(0))).update()
        try await database.schema(Chat.schema).field("needs_title", .bool, .required, .sql(.default(false))).update()
        let sql = try database.sql()
        try await sql.raw("""
            UPDATE messages SET parent_id = (SELECT previous.id FROM messages previous
                WHERE previous.chat_id = messages.chat_id AND previous.sequence < messages.sequence
                ORDER BY previous.sequence DESC LIMIT 1)
            """).run()
        try await sql.raw("CREATE INDEX idx_messages_current ON messages (chat_id, sequence) WHERE is_current").run()
        try await sql.raw("CREATE INDEX idx_messages_parent ON messages (chat_id, parent_id)").run()
    }

    func revert(on database: any Database) async throws {
        let sql = try database.sql()
        try await sql.raw("DROP INDEX idx_messages_parent").run()
        try await sql.raw("DROP INDEX idx_messages_current").run()
        for column in ["needs_title", "revision"] {
            try await database.schema(Chat.schema).deleteField(.string(column)).update()
        }
        for column in ["versions", "version", "is_current", "parent_id"] {
            try await database.schema(Message.schema).deleteField(.string(column)).update()
        }
    }
}

/// Adds to `messages` whether a reply's usage is the server's estimate (`usage_estimated`), and the
/// tokens a streaming reply holds against its user's daily quota (`reserved_tokens`).
struct AddUsageEstimates: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Message.schema).field("usage_estimated", .bool, .required, .sql(.default(false))).update()
        try await database.schema(Message.schema).field("reserved_tokens", .int, .required, .sql(.default(0))).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Message.schema).deleteField("reserved_tokens").update()
        try await database.schema(Message.schema).deleteField("usage_estimated").update()
    }
}

/// Adds to `messages` a reply's reasoning (`reasoning`, shown apart from its answer) and its
/// provider's signature of it (`reasoning_signature`).
/// A chat's tools (``Chat/tools``) and a reply's calls (``ToolCallRecord``), as JSON text.
struct AddTools: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Chat.schema).field("tools", .string, .required, .sql(.default("[]"))).update()
        try await database.schema(Message.schema).field("tool_calls", .string, .required, .sql(.default("[]"))).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Message.schema).deleteField("tool_calls").update()
        try await database.schema(Chat.schema).deleteField("tools").update()
    }
}

struct AddReasoning: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Message.schema).field("reasoning", .string).update()
        try await database.schema(Message.schema).field("reasoning_signature", .string).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Message.schema).deleteField("reasoning_signature").update()
        try await database.schema(Message.schema).deleteField("reasoning").update()
    }
}
