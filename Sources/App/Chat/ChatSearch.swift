import Fluent
import Foundation
import SQLKit

/// Full-text search over a user's chats: the text of the messages of their current conversations,
/// and their titles; every word of the query, in any order and any case; best matches first.
///
/// PostgreSQL searches `to_tsvector('simple', …)` through GIN indexes on `messages.content` and
/// `chats.title` (the database keeps them). SQLite searches an FTS5 table, `search_index`, which
/// this type keeps in step: the code that stores a message, ends a reply, titles, deletes a chat or
/// a user calls it (``indexMessage(_:chat:text:on:)`` and its siblings), in the same transaction
/// when there is one. On PostgreSQL those calls do nothing.
enum ChatSearch {
    struct Hit: Sendable {
        var chatID: UUID
        var chatTitle: String
        /// Nil when the title matched.
        var messageID: UUID?
        var role: MessageRole?
        var text: String
        var createdAt: Date?
    }

    /// The words of `query` (letters and digits; everything else separates them), lowercased.
    static func words(of query: String) -> [String] {
        query.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init).filter { !$0.isEmpty }
    }

    /// The caller's matches for `words`, best first: `limit` of them from `offset`.
    static func search(_ words: [String], for userID: UUID, limit: Int, offset: Int, on db: any Database) async throws -> [Hit] {
        guard !words.isEmpty else { return [] }
        let sql = try db.sql()
        let rows: [any SQLRow]
        if sql.dialect.name == "sqlite" {
            // FTS5: each word a quoted string (so that no word is read as an operator), all required.
            let match = words.map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }.joined(separator: " ")
            rows = try await sql.raw("""
                SELECT s.chat_id AS chat_id, c.title AS chat_title, s.message_id AS message_id, m.role AS role,
                       s.text AS text, COALESCE(m.created_at, c.created_at) AS created_at
                FROM search_index s JOIN chats c ON c.id = s.chat_id LEFT JOIN messages m ON m.id = s.message_id
                WHERE search_index MATCH \(bind: match) AND s.user_id = \(bind: userID)
                  AND (s.message_id IS NULL OR m.is_current)
                ORDER BY bm25(search_index), created_at DESC LIMIT \(bind: limit) OFFSET \(bind: offset)
                """).all()
        } else {
            let terms = words.joined(separator: " ")
            rows = try await sql.raw("""
                SELECT chat_id, chat_title, message_id, role, text, created_at FROM (
                    SELECT m.chat_id AS chat_id, c.title AS chat_title, m.id AS message_id, m.role AS role, m.content AS text,
                           m.created_at AS created_at, ts_rank(to_tsvector('simple', m.content), q) AS rank
                    FROM messages m JOIN chats c ON c.id = m.chat_id, plainto_tsquery('simple', \(bind: terms)) q
                    WHERE c.user_id = \(bind: userID) AND m.is_current AND to_tsvector('simple', m.content) @@ q
                    UNION ALL
                    SELECT c.id, c.title, NULL, NULL, c.title, c.created_at, ts_rank(to_tsvector('simple', c.title), q) * 2
                    FROM chats c, plainto_tsquery('simple', \(bind: terms)) q
                    WHERE c.user_id = \(bind: userID) AND to_tsvector('simple', c.title) @@ q
                ) hits ORDER BY rank DESC, created_at DESC LIMIT \(bind: limit) OFFSET \(bind: offset)
                """).all()
        }
        return try rows.map { row in
            Hit(chatID: try row.decode(column: "chat_id", as: UUID.self), chatTitle: try row.decode(column: "chat_title", as: String.self),
                messageID: try row.decode(column: "message_id", as: UUID?.self),
                role: try row.decode(column: "role", as: String?.self).flatMap(MessageRole.init(rawValue:)),
                text: try row.decode(column: "text", as: String.self), createdAt: try row.decode(column: "created_at", as: Date?.self))
        }
    }

    /// A short passage of `text` around the first of `words` it holds (the start when none),
    /// white space folded, cut at word boundaries, with "…" where it was cut.
    static func snippet(of text: String, around words: [String], radius: Int = 80) -> String {
        let folded = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        let lower = folded.lowercased()
        let hit = words.compactMap { lower.range(of: $0) }.min { $0.lowerBound < $1.lowerBound }
        // Lowercasing keeps offsets for most text; where it does not, start at the beginning.
        let center = hit.map { lower.distance(from: lower.startIndex, to: $0.lowerBound) } ?? 0
        let characters = Array(folded)
        guard characters.count > radius * 2 else { return folded }
        var start = max(0, min(center, characters.count) - radius)
        var end = min(characters.count, start + radius * 2)
        start = max(0, min(start, end - radius * 2))
        while start > 0, characters[start - 1] != " ", center - start < radius + 20 { start -= 1 }
        while end < characters.count, characters[end] != " ", end - center < radius * 2 + 20 { end += 1 }
        let passage = String(characters[start..<end]).trimmingCharacters(in: .whitespaces)
        return (start > 0 ? "…" : "") + passage + (end < characters.count ? "…" : "")
    }

    // MARK: Keeping SQLite's index in step

    private static func isSQLite(_ sql: any SQLDatabase) -> Bool { sql.dialect.name == "sqlite" }

    /// A message's text is stored (a question, or a reply that ended): it can be found.
    static func indexMessage(_ messageID: UUID, chat chatID: UUID, text: String, on sql: any SQLDatabase) async throws {
        guard isSQLite(sql) else { return }
        try await sql.raw("DELETE FROM search_index WHERE message_id = \(bind: messageID)").run()
        guard !text.isEmpty else { return }
        try await sql.raw("""
            INSERT INTO search_index (text, chat_id, user_id, message_id)
            SELECT \(bind: text), id, user_id, \(bind: messageID) FROM chats WHERE id = \(bind: chatID)
            """).run()
    }

    /// The chat's title is new, or changed.
    static func indexTitle(of chatID: UUID, on sql: any SQLDatabase) async throws {
        guard isSQLite(sql) else { return }
        try await sql.raw("DELETE FROM search_index WHERE chat_id = \(bind: chatID) AND message_id IS NULL").run()
        try await sql.raw("""
            INSERT INTO search_index (text, chat_id, user_id, message_id) SELECT title, id, user_id, NULL FROM chats WHERE id = \(bind: chatID)
            """).run()
    }

    /// A message is gone.
    static func forgetMessage(_ messageID: UUID, on sql: any SQLDatabase) async throws {
        guard isSQLite(sql) else { return }
        try await sql.raw("DELETE FROM search_index WHERE message_id = \(bind: messageID)").run()
    }

    /// Chats are gone (deleted one by one, with their owner, or as idle): whatever the index holds
    /// of chats that no longer exist goes.
    static func forgetDeletedChats(on sql: any SQLDatabase) async throws {
        guard isSQLite(sql) else { return }
        try await sql.raw("DELETE FROM search_index WHERE chat_id NOT IN (SELECT id FROM chats)").run()
    }
}

/// The search's storage: a GIN index per searched column on PostgreSQL; on SQLite, the FTS5 table
/// ``ChatSearch`` keeps, filled from what is stored already.
struct CreateSearchIndex: AsyncMigration {
    func prepare(on database: any Database) async throws {
        let sql = try database.sql()
        if sql.dialect.name == "sqlite" {
            try await sql.raw("""
                CREATE VIRTUAL TABLE search_index USING fts5(text, chat_id UNINDEXED, user_id UNINDEXED, message_id UNINDEXED,
                                                             tokenize = 'unicode61 remove_diacritics 2')
                """).run()
            try await sql.raw("""
                INSERT INTO search_index (text, chat_id, user_id, message_id)
                SELECT m.content, m.chat_id, c.user_id, m.id FROM messages m JOIN chats c ON c.id = m.chat_id WHERE m.content <> ''
                """).run()
            try await sql.raw("INSERT INTO search_index (text, chat_id, user_id, message_id) SELECT title, id, user_id, NULL FROM chats").run()
        } else {
            try await sql.raw("CREATE INDEX idx_messages_search ON messages USING GIN (to_tsvector('simple', content))").run()
            try await sql.raw("CREATE INDEX idx_chats_search ON chats USING GIN (to_tsvector('simple', title))").run()
        }
    }

    func revert(on database: any Database) async throws {
        let sql = try database.sql()
        if sql.dialect.name == "sqlite" {
            try await sql.raw("DROP TABLE search_index").run()
        } else {
            try await sql.raw("DROP INDEX idx_chats_search").run()
            try await sql.raw("DROP INDEX idx_messages_search").run()
        }
    }
}
