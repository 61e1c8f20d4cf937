import SQLKit
import Fluent
import Vapor

/// Messages in the admin: search every conversation by content, filter by role and status, look at
/// one, delete one (not a reply still streaming: stop it first).
struct AdminMessagesController: RouteCollection {
    let clock: any WallClock

    func boot(routes: any RoutesBuilder) throws {
        let group = routes.grouped("messages")
        group.get(use: list)
        group.get(":messageID", use: detail)
        group.get(":messageID", "delete", use: confirmDelete)
        group.post(":messageID", "delete", use: delete)
    }

    struct Row: Encodable {
        let id: String
        let chatID: String
        let chatTitle: String
        let sequence: Int
        let role: String
        let status: String
        let content: String
        let excerpt: String
        let model: String
        let inputTokens: Int
        let outputTokens: Int
        let error: String?
        let created: String?

        init(_ message: Message, chat: Chat) {
            id = message.id?.uuidString ?? ""
            chatID = chat.id?.uuidString ?? ""
            chatTitle = chat.title
            sequence = message.sequence
            role = message.role.rawValue
            status = message.status.rawValue
            content = message.content
            excerpt = message.content.count > 120 ? String(message.content.prefix(120)) + "…" : message.content
            model = message.model
            inputTokens = message.inputTokens
            outputTokens = message.outputTokens
            error = message.error
            created = message.createdAt?.adminText
        }
    }

    struct List: Encodable {
        let q: String
        let roles: [AdminOption]
        let statuses: [AdminOption]
        let sorts: [AdminOption]
        let rows: [Row]
        let pagination: AdminPagination
    }

    static let sorts: [(String, String)] = [("-created", "Newest first"), ("created", "Oldest first")]

    func list(req: Request) async throws -> Response {
        let q = req.adminQuery("q")
        let role = req.adminQuery("role").flatMap(MessageRole.init(rawValue:))
        let status = req.adminQuery("status").flatMap(MessageStatus.init(rawValue:))
        let chatID = req.adminQuery("chat").flatMap(UUID.init(uuidString:))
        let oldestFirst = req.adminQuery("sort") == "created"
        let filtered = { () -> QueryBuilder<Message> in
            let query = Message.query(on: req.db)
            if let q { query.filter(AdminSearch.contains("content", q)) }
            if let role { query.filter(\.$role == role) }
            if let status { query.filter(\.$status == status) }
            if let chatID { query.filter(\.$chat.$id == chatID) }
            return query
        }
        let pagination = AdminPagination(request: req, total: try await filtered().count())
        let messages = try await filtered().with(\.$chat)
            .sort(\.$createdAt, oldestFirst ? .ascending : .descending).sort(\.$sequence, oldestFirst ? .ascending : .descending)
            .range(pagination.offset..<(pagination.offset + AdminPagination.pageSize)).all()
        let content = List(
            q: q ?? "",
            roles: AdminOption.list([("", "Any"), ("user", "user"), ("assistant", "assistant")], selected: role?.rawValue),
            statuses: AdminOption.list([("", "Any")] + ["complete", "streaming", "failed", "cancelled"].map { ($0, $0) }, selected: status?.rawValue),
            sorts: AdminOption.list(Self.sorts, selected: oldestFirst ? "created" : "-created"),
            rows: messages.map { Row($0, chat: $0.chat) }, pagination: pagination
        )
        return try await req.adminPage("messages", title: "Messages", section: "messages", content)
    }

    struct Detail: Encodable {
        let message: Row
        let owner: String
        /// The files the message carries.
        var files: [AttachedFile] = []
        /// The tools a reply called.
        var calls: [ToolCall] = []
    }

    struct ToolCall: Encodable {
        let name: String
        let arguments: String
        let result: String
        let isError: Bool
        let duration: String
    }

    struct AttachedFile: Encodable {
        let name: String
        let mediaType: String
        let size: String
        let sha256: String
    }

    func detail(req: Request) async throws -> Response {
        let message = try await Self.find(req)
        let owner = try await User.find(message.chat.$owner.id, on: req.db)?.email ?? ""
        let row = try await req.db.sql().select().columns("attachments", "tool_calls").from(Message.schema)
            .where("id", .equal, SQLBind(try message.requireID())).first()
        let files = [FileResponse](storedJSON: try row?.decode(column: "attachments", as: String.self) ?? "[]").map {
            AttachedFile(name: $0.name, mediaType: $0.mediaType, size: FileError.size($0.size), sha256: $0.sha256)
        }
        let calls = [ToolCallRecord](storedJSON: try row?.decode(column: "tool_calls", as: String.self) ?? "[]").map {
            ToolCall(name: $0.name, arguments: String($0.arguments.jsonText.prefix(2000)), result: String(($0.result ?? "(running)").prefix(4000)),
                     isError: $0.isError, duration: $0.durationMs.map { "\($0) ms" } ?? "—")
        }
        return try await req.adminPage("message", title: "Message \(message.sequence)", section: "messages",
                                       Detail(message: Row(message, chat: message.chat), owner: owner, files: files, calls: calls))
    }

    func confirmDelete(req: Request) async throws -> Response {
        let message = try await Self.find(req)
        try Self.requireNotStreaming(message)
        return try await req.adminPage("message_delete", title: "Delete message", section: "messages",
                                       Detail(message: Row(message, chat: message.chat), owner: ""))
    }

    func delete(req: Request) async throws -> Response {
        let (_, me) = try req.requireAdmin()
        let message = try await Self.find(req)
        try Self.requireNotStreaming(message)
        let chatID = message.$chat.id
        try await req.db.transaction { tx in
            try await ConversationTree(chatID: chatID, sql: try tx.sql()).remove(message, at: clock.now().atDatabasePrecision)
        }
        req.logger.notice("admin deleted message", metadata: [
            "admin": "\(me.email)", "message": "\(message.id?.uuidString ?? "")", "chat": "\(chatID)",
        ])
        return req.redirect(to: "/admin/chats/\(chatID)/?notice=deleted")
    }

    static func find(_ req: Request) async throws -> Message {
        guard let id = req.parameters.get("messageID", as: UUID.self),
              let message = try await Message.query(on: req.db).filter(\.$id == id).with(\.$chat).first() else { throw AdminError.notFound }
        return message
    }

    static func requireNotStreaming(_ message: Message) throws {
        guard message.status != .streaming else {
            throw AdminError.forbidden("This reply is still streaming; it can be deleted once it ends (or with its chat).")
        }
    }
}
