import Foundation
import Vapor

/// `GET /api/chat/<id>/export/`: a conversation to take away, as Markdown or JSON.
struct ExportController: RouteCollection {
    let chats: ChatService

    func boot(routes: any RoutesBuilder) throws {
        routes.get("chat", ":chatID", "export", use: export)
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
            if !message.attachments.isEmpty {
                text += message.attachments.map { "- 📎 " + singleLine($0.name) + " (" + $0.mediaType + ", " + FileError.size($0.size) + ")" }
                    .joined(separator: "\n") + "\n\n"
            }
            if let error = message.error, message.status == .failed { text += "_" + singleLine(error) + "_\n\n" }
        }
        return text
    }

    /// `attachment`, with a file name made of the title (``ContentDisposition``).
    static func contentDisposition(title: String, format: Format) -> String {
        let ext = format == .markdown ? "md" : "json"
        let base = singleLine(title).trimmingCharacters(in: .whitespaces)
        return ContentDisposition.header(name: (base.isEmpty ? "chat" : String(base.prefix(80))) + "." + ext)
    }

    private static func singleLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    private static func humanTime(_ date: Date) -> String {
        let stamp = RFC3339.string(date)
        return String(stamp.prefix(10)) + " " + String(stamp.dropFirst(11).prefix(5)) + " UTC"
    }
}
