import Vapor

/// `/api/chat/…`: create, list, read, rename, delete, send, stop; regenerate, edit, and the versions at a turn.
struct ChatController: RouteCollection {
    let chats: ChatService
    let rules: ChatInputRules
    let limiter: RateLimiter
    /// Replies started per user (each costs money).
    let replyLimit: RateLimitPolicy
    /// Whose daily token quota a reply starts under.
    let usage: UsageLedger

    func boot(routes: any RoutesBuilder) throws {
        let chat = routes.grouped("chat")
        chat.post(use: create)
        chat.get(use: list)
        chat.get(":chatID", use: show)
        chat.patch(":chatID", use: update)
        chat.delete(":chatID", use: delete)
        chat.post(":chatID", "send", use: send)
        chat.post(":chatID", "stop", use: stop)
        chat.post(":chatID", "regenerate", use: regenerate)
        chat.post(":chatID", "edit", use: edit)
        chat.get(":chatID", "messages", ":messageID", "versions", use: versions)
        chat.post(":chatID", "messages", ":messageID", "select", use: select)
    }

    func create(req: Request) async throws -> Response {
        let input = try req.decodeJSON(CreateChatRequest.self).validated(rules)
        if input.content != nil { try await withinReplyLimit(req) }
        let chat = try await chats.create(input, for: try budget(req), on: req.db)
        return try await chat.encodeResponse(status: .created, for: req)
    }

    func list(req: Request) async throws -> Response {
        let query = try req.query.decode(ChatListQuery.self).validated(rules.settings)
        return .json(try await chats.list(query, for: try req.currentUser.requireID(), on: req.db))
    }

    func show(req: Request) async throws -> ChatResponse {
        try await chats.get(try req.chatID(), for: try req.currentUser.requireID(), on: req.db)
    }

    func update(req: Request) async throws -> ChatResponse {
        let chatID = try req.chatID()
        let change = try req.decodeJSON(UpdateChatRequest.self).validated(rules)
        return try await chats.update(chatID, change, for: try req.currentUser.requireID(), on: req.db)
    }

    func delete(req: Request) async throws -> HTTPStatus {
        try await chats.delete(try req.chatID(), for: try req.currentUser.requireID(), on: req.db)
        return .noContent
    }

    func send(req: Request) async throws -> Response {
        let chatID = try req.chatID()
        let input = try req.decodeJSON(SendMessageRequest.self).validated(rules)
        try await withinReplyLimit(req)
        let sent = try await chats.send(input, to: chatID, for: try budget(req), on: req.db)
        return try await sent.encodeResponse(status: .accepted, for: req)
    }

    func stop(req: Request) async throws -> MessageResponse {
        try await chats.stop(try req.chatID(), for: try req.currentUser.requireID(), on: req.db)
    }

    func regenerate(req: Request) async throws -> Response {
        let chatID = try req.chatID()
        let model = try req.decodeJSON(RegenerateRequest.self, allowEmpty: true).validated(rules)
        try await withinReplyLimit(req)
        let reply = try await chats.regenerate(chatID, model: model, for: try budget(req), on: req.db)
        return RegenerateResponse(assistantMessage: reply).response(status: .accepted, for: req)
    }

    func edit(req: Request) async throws -> Response {
        let chatID = try req.chatID()
        let change = try req.decodeJSON(EditMessageRequest.self).validated(rules)
        try await withinReplyLimit(req)
        return try await chats.edit(change, in: chatID, for: try budget(req), on: req.db).response(status: .accepted, for: req)
    }

    /// A reply may start: within the reply rate limit (else 429, nothing stored). The daily quota is
    /// checked where the reply is stored (``ChatService``).
    private func withinReplyLimit(_ req: Request) async throws {
        try await limiter.check(replyLimit, key: try req.currentUser.requireID().lowercased, for: req)
    }

    /// The caller and their daily token quota.
    private func budget(_ req: Request) throws -> ReplyBudget {
        let user = try req.currentUser
        return ReplyBudget(userID: try user.requireID(), quota: usage.quota(of: user))
    }

    func versions(req: Request) async throws -> MessageListResponse {
        MessageListResponse(results: try await chats.versions(of: try req.messageID(), in: try req.chatID(),
                                                              for: try req.currentUser.requireID(), on: req.db))
    }

    func select(req: Request) async throws -> ChatResponse {
        try await chats.select(try req.messageID(), in: try req.chatID(), for: try req.currentUser.requireID(), on: req.db)
    }
}

extension Request {
    /// The `:chatID` path parameter; 400 when it is not a UUID.
    func chatID() throws -> UUID {
        guard let raw = parameters.get("chatID"), let id = UUID(hyphenated: raw) else {
            throw RequestError.invalidParameter(name: "chat_id", message: "Must be a UUID.")
        }
        return id
    }

    /// The `:messageID` path parameter; 400 when it is not a UUID.
    func messageID() throws -> UUID {
        guard let raw = parameters.get("messageID"), let id = UUID(hyphenated: raw) else {
            throw RequestError.invalidParameter(name: "message_id", message: "Must be a UUID.")
        }
        return id
    }
}
