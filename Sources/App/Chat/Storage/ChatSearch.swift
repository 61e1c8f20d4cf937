import Fluent
import Foundation
import SQLKit

/// Full-text search over a user's chats: the text of the messages of their current conversations,
/// and their titles; every word of the query, in any order and any case; best matches first.
///
/// PostgreSQL searches `to_tsvector('simple', …)` through GIN indexes on `messages.content` and
/// `chats.title`; SQLite an FTS5 table, `search_index`, that triggers keep in step with `messages`
/// and `chats` (``AddSearchIndexTriggers``). Either way the database keeps the index: no code that
/// stores, ends, titles or deletes anything has to remember it.
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
    static func search(_ words: [String], for userID: UUID, limit: Int, offset: Int, on db: any Database,
                       kind: DatabaseKind) async throws -> [Hit] {
        guard !words.isEmpty else { return [] }
        let sql = try db.sql()
        let rows: [any SQLRow]
        if kind == .sqlite {
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
}

/// The search's storage: a GIN index per searched column on PostgreSQL; on SQLite, the FTS5 table
/// ``ChatSearch`` keeps, filled from what is stored already.
struct CreateSearchIndex: AsyncMigration {
    let kind: DatabaseKind

    func prepare(on database: any Database) async throws {
        let sql = try database.sql()
        if kind == .sqlite {
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
        if kind == .sqlite {
            try await sql.raw("DROP TABLE search_index").run()
        } else {
            try await sql.raw("DROP INDEX idx_chats_search").run()
            try await sql.raw("DROP INDEX idx_messages_search").run()
        }
    }
}

/// SQLite: triggers keep `search_index` in step with what is stored — a message once it is no
/// longer streaming (or when an ended one changes), a chat's title, and deletions (cascades
/// included) — and the index is rebuilt once from what is stored. PostgreSQL's GIN indexes need none.
struct AddSearchIndexTriggers: AsyncMigration {
    let kind: DatabaseKind

    static let triggers = [
        """
        CREATE TRIGGER search_message_added AFTER INSERT ON messages
        WHEN new.status <> 'streaming' AND new.content <> '' BEGIN
            INSERT INTO search_index (text, chat_id, user_id, message_id)
            SELECT new.content, new.chat_id, c.user_id, new.id FROM chats c WHERE c.id = new.chat_id;
        END
        """,
        """
        CREATE TRIGGER search_message_changed AFTER UPDATE OF content, status ON messages
        WHEN old.status <> new.status OR (old.content <> new.content AND new.status <> 'streaming') BEGIN
            DELETE FROM search_index WHERE message_id = old.id;
            INSERT INTO search_index (text, chat_id, user_id, message_id)
            SELECT new.content, new.chat_id, c.user_id, new.id FROM chats c
            WHERE c.id = new.chat_id AND new.status <> 'streaming' AND new.content <> '';
        END
        """,
        """
        CREATE TRIGGER search_message_deleted AFTER DELETE ON messages BEGIN
            DELETE FROM search_index WHERE message_id = old.id;
        END
        """,
        """
        CREATE TRIGGER search_chat_added AFTER INSERT ON chats BEGIN
            INSERT INTO search_index (text, chat_id, user_id, message_id) VALUES (new.title, new.id, new.user_id, NULL);
        END
        """,
        """
        CREATE TRIGGER search_chat_renamed AFTER UPDATE OF title ON chats WHEN old.title <> new.title BEGIN
            DELETE FROM search_index WHERE chat_id = old.id AND message_id IS NULL;
            INSERT INTO search_index (text, chat_id, user_id, message_id) VALUES (new.title, new.id, new.user_id, NULL);
        END
        """,
        """
        CREATE TRIGGER search_chat_deleted AFTER DELETE ON chats BEGIN
            DELETE FROM search_index WHERE chat_id = old.id;
        END
        """,
    ]

    func prepare(on database: any Database) async throws {
        guard kind == .sqlite else { return }
        let sql = try database.sql()
        for trigger in Self.triggers { try await sql.raw(SQLQueryString(trigger)).run() }
        try await sql.raw("DELETE FROM search_index").run()
        try await sql.raw("""
            INSERT INTO search_index (text, chat_id, user_id, message_id)
            SELECT m.content, m.chat_id, c.user_id, m.id FROM messages m JOIN chats c ON c.id = m.chat_id
            WHERE m.content <> '' AND m.status <> 'streaming'
            """).run()
        try await sql.raw("INSERT INTO search_index (text, chat_id, user_id, message_id) SELECT title, id, user_id, NULL FROM chats").run()
    }

    func revert(on database: any Database) async throws {
        guard kind == .sqlite else { return }
        let sql = try database.sql()
        for name in ["search_message_added", "search_message_changed", "search_message_deleted", "search_chat_added",
                     "search_chat_renamed", "search_chat_deleted"] {
            try await sql.raw("DROP TRIGGER IF EXISTS \(unsafeRaw: name)").run()
        }
    }
}
