import Fluent
import SQLKit

/// The files feature's tables, and the column that lists a message's attachments.
enum Files {
    static func migrations(_ kind: DatabaseKind) -> [any Migration] { [CreateFiles(kind: kind)] }
}

/// Creates `files` (one row per upload, deleted with its owner), `file_chunks` (the bytes, when
/// they live in the database: in order, a chunk per row, so that a file streams out without being
/// held whole), `message_files` (which messages use which files: a used file cannot be deleted,
/// and a chat's deletion deletes the files only it used) and `messages.attachments` (the files
/// as the message shows them, so that reading messages needs no join).
struct CreateFiles: AsyncMigration {
    let kind: DatabaseKind

    func prepare(on database: any Database) async throws {
        let sql = try database.sql()
        let (big, bytes, time) = kind == .sqlite ? ("INTEGER", "BLOB", "DATETIME") : ("BIGINT", "BYTEA", "TIMESTAMPTZ")
        try await sql.raw("""
            CREATE TABLE files (
                id UUID PRIMARY KEY,
                user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                media_type TEXT NOT NULL,
                size \(unsafeRaw: big) NOT NULL,
                sha256 TEXT NOT NULL,
                width INTEGER,
                height INTEGER,
                pages INTEGER,
                extracted_text TEXT,
                storage TEXT NOT NULL,
                created_at \(unsafeRaw: time) NOT NULL
            )
            """).run()
        try await sql.raw("CREATE INDEX idx_files_user ON files (user_id, created_at)").run()
        try await sql.raw("""
            CREATE TABLE file_chunks (
                file_id UUID NOT NULL REFERENCES files (id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                data \(unsafeRaw: bytes) NOT NULL,
                PRIMARY KEY (file_id, position)
            )
            """).run()
        try await sql.raw("""
            CREATE TABLE message_files (
                message_id UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                file_id UUID NOT NULL REFERENCES files (id),
                chat_id UUID NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                PRIMARY KEY (message_id, file_id)
            )
            """).run()
        try await sql.raw("CREATE INDEX idx_message_files_file ON message_files (file_id)").run()
        try await sql.raw("CREATE INDEX idx_message_files_chat ON message_files (chat_id)").run()
        try await database.schema(Message.schema).field("attachments", .string, .required, .sql(.default("[]"))).update()
    }

    func revert(on database: any Database) async throws {
        let sql = try database.sql()
        try await database.schema(Message.schema).deleteField("attachments").update()
        for table in ["message_files", "file_chunks", "files"] {
            try await sql.raw("DROP TABLE \(ident: table)").run()
        }
    }
}
