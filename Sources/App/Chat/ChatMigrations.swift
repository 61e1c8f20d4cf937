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
