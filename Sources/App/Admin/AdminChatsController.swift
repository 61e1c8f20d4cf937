import Fluent
import SQLKit
import Vapor

/// Chats in the admin: list (by title, by owner), the conversation in order, edit the title,
/// model and system prompt, delete with its messages.
struct AdminChatsController: RouteCollection {
    let chats: ChatService
    let rules: ChatInputRules

    func boot(routes: any RoutesBuilder) throws {
        let group = routes.grouped("chats")
        group.get(use: list)
        group.get(":chatID", use: detail)
        group.post(":chatID", use: update)
        group.get(":chatID", "delete", use: confirmDelete)
        group.post(":chatID", "delete", use: delete)
        group.post(":chatID", "shares", ":shareID", "revoke", use: revokeShare)
    }

    struct Row: Encodable {
        let id: String
        let title: String
        let owner: String
        let ownerID: String
        let model: String
        let messages: Int?
        let activity: String
        let created: String?

        init(_ chat: Chat, owner: String, messages: Int?) {
            id = chat.id?.uuidString ?? ""
            title = chat.title
            self.owner = owner
            ownerID = chat.$owner.id.uuidString
            model = chat.model
            self.messages = messages
            activity = chat.activityAt.adminText
            created = chat.createdAt?.adminText
        }
    }

    struct List: Encodable {
        let q: String
        let owner: String
        let sorts: [AdminOption]
        let rows: [Row]
        let pagination: AdminPagination
    }

    static let sorts: [(String, String)] = [
        ("-activity", "Latest activity"), ("activity", "Oldest activity"), ("title", "Title A–Z"), ("-created", "Newest first"),
    ]

    func list(req: Request) async throws -> Response {
        let q = req.adminQuery("q")
        let owner = req.adminQuery("owner")
        let sortKey = req.adminQuery("sort") ?? "-activity"
        var ownerID: UUID?
        if let owner {
            ownerID = UUID(hyphenated: owner)
            if ownerID == nil { ownerID = try await User.find(email: owner, on: req.db)?.id ?? UUID() }
        }
        let filtered = { () -> QueryBuilder<Chat> in
            let query = Chat.query(on: req.db)
            if let q { query.filter(AdminSearch.contains("title", q)) }
            if let ownerID { query.filter(\.$owner.$id == ownerID) }
            return query
        }
        let pagination = AdminPagination(request: req, total: try await filtered().count())
        let query = filtered().with(\.$owner)
        switch sortKey {
        case "activity": query.sort(\.$activityAt, .ascending)
        case "title": query.sort(\.$title, .ascending)
        case "-created": query.sort(\.$createdAt, .descending)
        default: query.sort(\.$activityAt, .descending)
        }
        let page = try await query.sort(\.$id).range(pagination.offset..<(pagination.offset + AdminPagination.pageSize)).all()
        let counts = try await Self.messageCounts(page.compactMap(\.id), on: req.db)
        let content = List(
            q: q ?? "", owner: owner ?? "",
            sorts: AdminOption.list(Self.sorts, selected: Self.sorts.contains { $0.0 == sortKey } ? sortKey : "-activity"),
            rows: page.map { Row($0, owner: $0.owner.email, messages: counts[$0.id ?? UUID()] ?? 0) },
            pagination: pagination
        )
        return try await req.adminPage("chats", title: "Chats", section: "chats", content)
    }

    struct Detail: Encodable {
        let chat: Row
        let system: String
        let models: [AdminOption]
        /// One page of the conversation, in order.
        let messages: [AdminMessagesController.Row]
        let pagination: AdminPagination
        let errors: [String]
        let title: String
        /// Its share links (staff may revoke them).
        let shares: [Share]

        struct Share: Encodable {
            let id: String
            let created: String
            let expires: String
        }
    }

    func detail(req: Request) async throws -> Response {
        try await renderDetail(req, try await Self.find(req), errors: [], status: .ok)
    }

    func update(req: Request) async throws -> Response {
        let (_, me) = try req.requireAdmin()
        let chat = try await Self.find(req)
        var errors = FieldErrors()
        let title = rules.title(req.formField("title"), into: &errors)
        let requestedModel = req.formField("model")
        let model = requestedModel == chat.model ? chat.model : rules.model(requestedModel, into: &errors)
        let system = rules.system(req.formText("system"), into: &errors)
        guard errors.isEmpty else {
            let messages = errors.messages.sorted { $0.key < $1.key }.flatMap { field, texts in texts.map { "\(field): \($0)" } }
            return try await renderDetail(req, chat, errors: messages, status: .badRequest)
        }
        var changes: [String] = []
        if chat.title != title { changes.append("title") }
        if chat.model != model { changes.append("model: \(chat.model) → \(model)") }
        if chat.system != system { changes.append("system prompt") }
        let retitled = chat.title != title
        (chat.title, chat.model, chat.system) = (title, model, system)
        if retitled { chat.needsTitle = false }
        try await chat.save(on: req.db)
        chats.lists.changed(chat.$owner.id)
        let id = try chat.requireID()
        if retitled {
            chats.bus.chatRenamed(id, title: title)
        }
        req.logger.notice("admin changed chat", metadata: [
            "admin": "\(me.email)", "chat": "\(id)", "changes": "\(changes.joined(separator: "; "))",
        ])
        return req.redirect(to: "/admin/chats/\(id)/?notice=saved")
    }

    struct DeletePage: Encodable {
        let chat: Row
        let messages: Int
        let streaming: Bool
    }

    func confirmDelete(req: Request) async throws -> Response {
        let chat = try await Self.find(req)
        let id = try chat.requireID()
        let messages = try await Message.query(on: req.db).filter(\.$chat.$id == id).count()
        let streaming = try await Message.query(on: req.db).filter(\.$chat.$id == id).filter(\.$status == .streaming).count() > 0
        let content = DeletePage(chat: Row(chat, owner: chat.owner.email, messages: messages), messages: messages, streaming: streaming)
        return try await req.adminPage("chat_delete", title: "Delete chat", section: "chats", content)
    }

    func delete(req: Request) async throws -> Response {
        let (_, me) = try req.requireAdmin()
        let chat = try await Self.find(req)
        let id = try chat.requireID()
        try await chats.remove(chat, on: req.db)
        req.logger.notice("admin deleted chat", metadata: ["admin": "\(me.email)", "chat": "\(id)", "owner": "\(chat.owner.email)"])
        return req.redirect(to: "/admin/chats/?notice=deleted")
    }

    /// Revokes one of the chat's share links: 404 from the next request on, on every instance.
    func revokeShare(req: Request) async throws -> Response {
        let (_, me) = try req.requireAdmin()
        let chat = try await Self.find(req)
        let id = try chat.requireID()
        guard let shareID = req.parameters.get("shareID"), ShareService.isWellFormed(shareID),
              let share = try await ShareLink.query(on: req.db).filter(\.$id == shareID).filter(\.$chat.$id == id).first()
        else { throw AdminError.notFound }
        try await share.delete(on: req.db)
        req.logger.notice("admin revoked a share link", metadata: ["admin": "\(me.email)", "chat": "\(id)"])
        return req.redirect(to: "/admin/chats/\(id)/?notice=share-revoked")
    }

    /// The chat with one page of its conversation (a long chat is read page by page).
    private func renderDetail(_ req: Request, _ chat: Chat, errors: [String], status: HTTPResponseStatus) async throws -> Response {
        let id = try chat.requireID()
        let total = try await Message.query(on: req.db).filter(\.$chat.$id == id).count()
        let pagination = AdminPagination(request: req, total: total)
        let messages = try await Message.query(on: req.db).filter(\.$chat.$id == id).sort(\.$sequence)
            .range(pagination.offset..<(pagination.offset + AdminPagination.pageSize)).all()
        let modelIDs = rules.catalog.modelIDs.contains(chat.model) ? rules.catalog.modelIDs : [chat.model] + rules.catalog.modelIDs
        let content = Detail(
            chat: Row(chat, owner: chat.owner.email, messages: total), system: chat.system ?? "",
            models: AdminOption.list(modelIDs.map { ($0, $0) }, selected: chat.model),
            messages: messages.map { AdminMessagesController.Row($0, chat: chat) }, pagination: pagination,
            errors: errors, title: chat.title,
            shares: try await ShareLink.query(on: req.db).filter(\.$chat.$id == id).sort(\.$createdAt, .descending).all().map {
                Detail.Share(id: $0.id ?? "", created: $0.createdAt.adminText, expires: $0.expiresAt?.adminText ?? "never")
            }
        )
        return try await req.adminPage("chat", title: chat.title, section: "chats", content, status: status)
    }

    static func find(_ req: Request) async throws -> Chat {
        guard let id = req.parameters.get("chatID", as: UUID.self),
              let chat = try await Chat.query(on: req.db).filter(\.$id == id).with(\.$owner).first() else { throw AdminError.notFound }
        return chat
    }

    /// Messages per chat, for a page of chats, in one query.
    static func messageCounts(_ chatIDs: [UUID], on db: any Database) async throws -> [UUID: Int] {
        guard !chatIDs.isEmpty else { return [:] }
        let rows = try await db.sql().select().column("chat_id").column(SQLFunction("COUNT", args: SQLLiteral.all), as: "count")
            .from(Message.schema).where("chat_id", .in, chatIDs).groupBy("chat_id").all()
        var counts: [UUID: Int] = [:]
        for row in rows {
            counts[try row.decode(column: "chat_id", as: UUID.self)] = try row.decode(column: "count", as: Int.self)
        }
        return counts
    }
}
