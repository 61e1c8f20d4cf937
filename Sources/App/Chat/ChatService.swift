import Fluent
import Foundation
import SQLKit
import Vapor

/// What users do with their chats. Every operation takes the caller and finds only their chats.
struct ChatService: Sendable {
    let rules: ChatInputRules
    let bus: any ChatEventBus
    let runner: ReplyRunner
    let clock: any WallClock

    func create(_ input: CreateChatRequest.Valid, for userID: UUID, on db: any Database) async throws -> ChatResponse {
        if input.content != nil, runner.isDraining { throw ChatError.shuttingDown }
        let now = clock.now().atDatabasePrecision
        let title = input.title ?? input.content.map(Chat.title(from:)) ?? Chat.untitled
        let chat = Chat(ownerID: userID, title: title, model: input.model, system: input.system, now: now)
        let turn = try await db.transaction { tx -> (user: Message, assistant: Message)? in
            try await chat.create(on: tx)
            guard let content = input.content else { return nil }
            return try await insertTurn(chat: chat, content: content, at: now, on: tx)
        }
        var messages: [MessageResponse] = []
        if let turn {
            messages = try await begin(turn, in: chat)
        }
        return try ChatResponse(chat, messages: messages)
    }

    /// A page of the caller's chats, newest activity first. Read with SQLKit straight into the
    /// response rows: this is the API's busiest read, and decoding Fluent models (which find their
    /// fields by reflection) cost more than the query itself.
    func list(_ query: ChatListQuery.Valid, for userID: UUID, on db: any Database) async throws -> ChatListResponse {
        let page = try await ChatReads.summaries(of: userID, query, on: db)
        let results = Array(page.prefix(query.limit))
        let next = page.count > query.limit ? results.last.map { ChatCursor(activityAt: $0.activityAt, id: $0.id).encoded } : nil
        return ChatListResponse(results: results.map(ChatSummaryResponse.init), next: next)
    }

    /// The chat with all its messages; a reply in progress shows the text received so far.
    func get(_ chatID: UUID, for userID: UUID, on db: any Database) async throws -> ChatResponse {
        guard let read = try await ChatReads.chat(chatID, ownedBy: userID, on: db) else { throw ChatError.chatNotFound }
        return ChatResponse(summary: ChatSummaryResponse(read.chat), messages: ChatConversation.overlay(read.messages, in: chatID, bus: bus))
    }

    func update(_ chatID: UUID, _ change: UpdateChatRequest.Valid, for userID: UUID, on db: any Database) async throws -> ChatResponse {
        let chat = try await Chat.find(chatID, ownedBy: userID, on: db)
        if let title = change.title { chat.title = title }
        if let model = change.model { chat.model = model }
        if let system = change.system { chat.system = system }
        try await chat.save(on: db)
        return try await get(chatID, for: userID, on: db)
    }

    /// Deletes the chat and its messages; a reply in progress stops and its streams end.
    func delete(_ chatID: UUID, for userID: UUID, on db: any Database) async throws {
        try await remove(try await Chat.find(chatID, ownedBy: userID, on: db), on: db)
    }

    /// Deletes any chat (the admin's path) with its messages; a reply in progress stops and its streams end.
    func remove(_ chat: Chat, on db: any Database) async throws {
        let chatID = try chat.requireID()
        try await chat.delete(on: db)
        chatsRemoved([chatID])
    }

    /// Stops the replies and ends the streams of chats already deleted (with their owner, say).
    func chatsRemoved(_ chatIDs: [UUID]) {
        chatIDs.forEach(bus.chatDeleted)
    }

    /// Stores the user's message and starts the reply; 409 while a reply is still streaming.
    func send(_ content: String, to chatID: UUID, for userID: UUID, on db: any Database) async throws -> SendResponse {
        guard !runner.isDraining else { throw ChatError.shuttingDown }
        let chat = try await Chat.find(chatID, ownedBy: userID, on: db)
        let now = clock.now().atDatabasePrecision
        let turn = try await db.transaction { tx in
            try await insertTurn(chat: chat, content: content, at: now, on: tx)
        }
        let messages = try await begin(turn, in: chat)
        return SendResponse(userMessage: messages[0], assistantMessage: messages[1])
    }

    func stop(_ chatID: UUID, for userID: UUID, on db: any Database) async throws -> MessageResponse {
        _ = try await Chat.find(chatID, ownedBy: userID, on: db)
        return try await runner.stop(chat: chatID)
    }

    /// Announces a stored turn and starts its reply.
    private func begin(_ turn: (user: Message, assistant: Message), in chat: Chat) async throws -> [MessageResponse] {
        let user = try MessageResponse(turn.user)
        let assistant = try MessageResponse(turn.assistant)
        bus.messageStored(user)
        bus.messageStored(assistant)
        try await runner.start(ReplyJob(
            chatID: try chat.requireID(), messageID: try turn.assistant.requireID(),
            sequence: turn.assistant.sequence, model: chat.model, system: chat.system, announced: assistant
        ))
        return [user, assistant]
    }

    /// Stores the user's message and an empty streaming reply after it, numbered atomically. The
    /// database allows one streaming reply per chat, so a second concurrent send fails here; a chat
    /// holding `CHAT_MAX_MESSAGES` takes no more.
    private func insertTurn(chat: Chat, content: String, at now: Date, on db: any Database) async throws -> (user: Message, assistant: Message) {
        let chatID = try chat.requireID()
        let sql = try db.sql()
        let reserved = try await sql.update(Chat.schema)
            .set("next_sequence", to: SQLBinaryExpression(left: SQLColumn("next_sequence"), op: SQLBinaryOperator.add, right: SQLLiteral.numeric("2")))
            .set("last_message_at", to: SQLBind(now))
            .set("activity_at", to: SQLBind(now))
            .set("updated_at", to: SQLBind(now))
            .where("id", .equal, SQLBind(chatID))
            .where("next_sequence", .lessThanOrEqual, SQLBind(rules.settings.maxMessagesPerChat - 1))
            .returning("next_sequence")
            .all(decodingColumn: "next_sequence", as: Int.self)
        // The chat was found just before: no row means it is full.
        guard let next = reserved.first else { throw ChatError.chatFull(rules.settings.maxMessagesPerChat) }
        let user = Message(chatID: chatID, sequence: next - 2, role: .user, content: content, status: .complete, model: chat.model)
        let assistant = Message(chatID: chatID, sequence: next - 1, role: .assistant, content: "", status: .streaming,
                                model: chat.model, heartbeatAt: now)
        user.createdAt = now
        assistant.createdAt = now
        do {
            // One statement for both (Fluent's create reflects over every field of each model).
            var insert = sql.insert(into: Message.schema).columns(Message.insertColumns)
            for message in [user, assistant] { insert = insert.values(try message.insertValues(at: now)) }
            try await insert.run()
        } catch let error as any DatabaseError where error.isConstraintFailure {
            throw ChatError.replyInProgress
        }
        chat.nextSequence = next
        chat.lastMessageAt = now
        chat.activityAt = now
        return (user, assistant)
    }
}
