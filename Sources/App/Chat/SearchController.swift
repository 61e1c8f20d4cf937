import Foundation
import Vapor

/// `GET /api/search/`: the caller's messages and chat titles that hold every word of `q`.
struct SearchController: RouteCollection {
    let settings: ChatSettings
    /// Which search the database has.
    let kind: DatabaseKind

    func boot(routes: any RoutesBuilder) throws {
        routes.get("search", use: search)
    }

    func search(req: Request) async throws -> SearchResponse {
        let query = try req.query.decode(SearchQuery.self).validated(settings)
        let userID = try req.currentUser.requireID()
        let hits = try await ChatSearch.search(query.words, for: userID, limit: query.limit + 1, offset: query.offset, on: req.db,
                                               kind: kind)
        let page = hits.prefix(query.limit)
        return SearchResponse(
            results: page.map { hit in
                SearchResult(chatID: hit.chatID.lowercased, chatTitle: hit.chatTitle, messageID: hit.messageID?.lowercased,
                             role: hit.role, snippet: ChatSearch.snippet(of: hit.text, around: query.words), createdAt: hit.createdAt)
            },
            next: hits.count > query.limit ? SearchQuery.cursor(offset: query.offset + query.limit) : nil
        )
    }
}

/// The query of `GET /api/search/`.
struct SearchQuery: Decodable {
    var q: String?
    var limit: String?
    var cursor: String?

    struct Valid {
        var words: [String]
        var limit: Int
        var offset: Int
    }

    func validated(_ settings: ChatSettings) throws -> Valid {
        var errors = FieldErrors()
        let text = (q ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { errors.add("q", "This field is required: the words to look for.") }
        errors.checkLength(text, "q", .query)
        errors.checkText(text, "q")
        let words = ChatSearch.words(of: text)
        if !text.isEmpty, words.isEmpty { errors.add("q", "Give at least one word (letters or digits).") }
        let limit = PageQuery.limit(self.limit, default: settings.defaultPageSize, max: settings.maxPageSize, into: &errors)
        var offset = 0
        // An empty cursor is no cursor (the first page), as other empty parameters are.
        if let cursor, !cursor.isEmpty {
            if let parsed = Self.offset(of: cursor) { offset = parsed } else { errors.add("cursor", "Not a cursor this server issued.") }
        }
        try errors.throwIfAny()
        return Valid(words: Array(words.prefix(20)), limit: limit, offset: offset)
    }

    /// The opaque cursor (a ``PageCursor``) of the page that starts at `offset`.
    static func cursor(offset: Int) -> String {
        PageCursor.encode("search", [String(offset)])
    }

    static func offset(of cursor: String) -> Int? {
        guard let fields = PageCursor.decode(cursor, list: "search", fields: 1), let offset = Int(fields[0]),
              (0...100_000).contains(offset) else { return nil }
        return offset
    }
}

/// One match: a message (with its role) or a chat's title (no message).
struct SearchResult: Codable, Sendable {
    var chatID: String
    var chatTitle: String
    var messageID: String?
    var role: MessageRole?
    var snippet: String
    var createdAt: Date?

    enum CodingKeys: String, CodingKey {
        case chatID = "chat_id", chatTitle = "chat_title", messageID = "message_id", role, snippet, createdAt = "created_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(chatID, forKey: .chatID)
        try container.encode(chatTitle, forKey: .chatTitle)
        try container.encode(messageID, forKey: .messageID)
        try container.encode(role, forKey: .role)
        try container.encode(snippet, forKey: .snippet)
        try container.encode(createdAt, forKey: .createdAt)
    }
}

struct SearchResponse: Content {
    var results: [SearchResult]
    var next: String?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(results, forKey: .results)
        try container.encode(next, forKey: .next)
    }
}

