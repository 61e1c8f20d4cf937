import Foundation
import Vapor

/// `GET /api/search/` (the caller's messages and chat titles) and `GET /api/chat/<id>/export/`
/// (a conversation to take away, as Markdown or JSON).
struct ChatToolsController: RouteCollection {
    let chats: ChatService
    let settings: ChatSettings

    func boot(routes: any RoutesBuilder) throws {
        routes.get("search", use: search)
        routes.get("chat", ":chatID", "export", use: export)
    }

    func search(req: Request) async throws -> SearchResponse {
        let query = try req.query.decode(SearchQuery.self).validated(settings)
        let userID = try req.currentUser.requireID()
        let hits = try await ChatSearch.search(query.words, for: userID, limit: query.limit + 1, offset: query.offset, on: req.db)
        let page = hits.prefix(query.limit)
        return SearchResponse(
            results: page.map { hit in
                SearchResult(chatID: hit.chatID.lowercased, chatTitle: hit.chatTitle, messageID: hit.messageID?.lowercased,
                             role: hit.role, snippet: ChatSearch.snippet(of: hit.text, around: query.words), createdAt: hit.createdAt)
            },
            next: hits.count > query.limit ? SearchQuery.cursor(offset: query.offset + query.limit) : nil
        )
    }

    func export(req: Request) async throws -> Response {
        let format = try req.query.decode(ExportQuery.self).validated()
        let chat = try await chats.get(try req.chatID(), for: try req.currentUser.requireID(), on: req.db)
        let body: ByteBuffer
        var headers = HTTPHeaders()
        switch format {
        case .markdown:
            body = ByteBuffer(string: ChatExport.markdown(chat))
            headers.replaceOrAdd(name: .contentType, value: "text/markdown; charset=utf-8")
        case .json:
            body = chat.jsonBuffer(capacity: 4096)
            headers.contentType = .json
        }
        headers.replaceOrAdd(name: .contentDisposition, value: ChatExport.contentDisposition(title: chat.summary.title, format: format))
        headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return Response(status: .ok, headers: headers, body: .init(buffer: body))
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
        var limit = settings.defaultPageSize
        if let raw = self.limit {
            if let value = Int(raw), (1...settings.maxPageSize).contains(value) {
                limit = value
            } else {
                errors.add("limit", "Must be a whole number from 1 to \(settings.maxPageSize).")
            }
        }
        var offset = 0
        // An empty cursor is no cursor (the first page), as other empty parameters are.
        if let cursor, !cursor.isEmpty {
            if let parsed = Self.offset(of: cursor) { offset = parsed } else { errors.add("cursor", "Not a cursor this server issued.") }
        }
        try errors.throwIfAny()
        return Valid(words: Array(words.prefix(20)), limit: limit, offset: offset)
    }

    /// The opaque cursor of the page that starts at `offset`.
    static func cursor(offset: Int) -> String {
        Data("search:\(offset)".utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }

    static func offset(of cursor: String) -> Int? {
        var base64 = cursor
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8), text.hasPrefix("search:"),
              let offset = Int(text.dropFirst(7)), (0...100_000).contains(offset) else { return nil }
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

/// The query of `GET /api/chat/<id>/export/`.
struct ExportQuery: Decodable {
    var format: String?

    func validated() throws -> ChatExport.Format {
        guard let raw = format?.lowercased() else { return .markdown }
        guard let format = ChatExport.Format(rawValue: raw == "md" ? "markdown" : raw) else {
            throw RequestError.invalidFields(["format": ["Must be markdown (or md) or json."]])
        }
        return format
    }
}

/// A conversation as a file: Markdown (a heading with the title, then each turn with who said it
/// and when) or the chat's JSON.
enum ChatExport {
    enum Format: String {
        case markdown
        case json
    }

    static func markdown(_ chat: ChatResponse) -> String {
        var text = "# " + singleLine(chat.summary.title) + "\n\n"
        if let created = chat.summary.createdAt { text += "_Started " + humanTime(created) + " · " + chat.summary.model + "_\n\n" }
        if let system = chat.summary.system, !system.isEmpty { text += "> **System:** " + system.replacingOccurrences(of: "\n", with: "\n> ") + "\n\n" }
        for message in chat.messages {
            let who = message.role == .user ? "You" : "Assistant"
            var heading = "## " + who
            if let created = message.createdAt { heading += " · " + humanTime(created) }
            if message.status != .complete { heading += " (" + message.status.rawValue + ")" }
            text += heading + "\n\n" + message.content + "\n\n"
            if let error = message.error, message.status == .failed { text += "_" + singleLine(error) + "_\n\n" }
        }
        return text
    }

    /// `attachment`, with a file name made of the title: `filename` in plain ASCII (anything else
    /// becomes `_`), `filename*` with the title as it is (RFC 6266, percent-encoded UTF-8).
    static func contentDisposition(title: String, format: Format) -> String {
        let ext = format == .markdown ? "md" : "json"
        let base = singleLine(title).trimmingCharacters(in: .whitespaces)
        let name = (base.isEmpty ? "chat" : String(base.prefix(80))) + "." + ext
        let ascii = String(name.unicodeScalars.map { scalar -> Character in
            let allowed = scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || " -_.()".unicodeScalars.contains(scalar))
            return allowed ? Character(scalar) : "_"
        })
        let encoded = name.addingPercentEncoding(withAllowedCharacters: .rfc5987) ?? "chat." + ext
        return "attachment; filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }

    private static func singleLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    private static func humanTime(_ date: Date) -> String {
        let stamp = RFC3339.string(date)
        return String(stamp.prefix(10)) + " " + String(stamp.dropFirst(11).prefix(5)) + " UTC"
    }
}

extension CharacterSet {
    /// `attr-char` of RFC 5987: what a `filename*` value holds unencoded.
    static let rfc5987 = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~")
}
