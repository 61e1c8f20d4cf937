import Vapor

/// `/api/chat/…`: create, list, read, rename, delete, send, stop.
struct ChatController: RouteCollection {
    let chats: ChatService
    let rules: ChatInputRules
    let limiter: RateLimiter
    /// Replies started per user (each costs money).
    let replyLimit: RateLimitPolicy

    func boot(routes: any RoutesBuilder) throws {
        let chat = routes.grouped("chat")
        chat.post(use: create)
        chat.get(use: list)
        chat.get(":chatID", use: show)
        chat.patch(":chatID", use: update)
        chat.delete(":chatID", use: delete)
        chat.post(":chatID", "send", use: send)
        chat.post(":chatID", "stop", use: stop)
    }

    func create(req: Request) async throws -> Response {
        let input = try req.decodeJSON(CreateChatRequest.self).validated(rules)
        let userID = try req.currentUser.requireID()
        if input.content != nil { try await limiter.check(replyLimit, key: userID.lowercased, for: req) }
        let chat = try await chats.create(input, for: userID, on: req.db)
        return try await chat.encodeResponse(status: .created, for: req)
    }

    func list(req: Request) async throws -> ChatListResponse {
        let query = try req.query.decode(ChatListQuery.self).validated(rules.settings)
        return try await chats.list(query, for: try req.currentUser.requireID(), on: req.db)
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
        let content = try req.decodeJSON(SendMessageRequest.self).validated(rules)
        let userID = try req.currentUser.requireID()
        try await limiter.check(replyLimit, key: userID.lowercased, for: req)
        let sent = try await chats.send(content, to: chatID, for: userID, on: req.db)
        return try await sent.encodeResponse(status: .accepted, for: req)
    }

    func stop(req: Request) async throws -> MessageResponse {
        try await chats.stop(try req.chatID(), for: try req.currentUser.requireID(), on: req.db)
    }
}

/// `GET /api/models/`.
struct ModelsController: RouteCollection {
    let catalog: ModelCatalog

    func boot(routes: any RoutesBuilder) throws {
        routes.get("models") { _ in catalog.listing }
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
}
