import Fluent
import Foundation
import Providers
import SQLKit
import Vapor

/// Who asks for a reply, and the daily token quota it starts under (nil: none).
struct ReplyBudget: Sendable {
    var userID: UUID
    var quota: Int?
}

/// What users do with their chats. Every operation takes the caller and finds only their chats;
/// those that start a reply (``ChatService+Turns.swift``) take the caller's ``ReplyBudget``.
struct ChatService: Sendable {
    let rules: ChatInputRules
    let bus: any ChatEventBus
    let lists: ChatLists
    let runner: ReplyRunner
    let usage: UsageLedger
    let attachments: Attachments
    let clock: any WallClock

    func create(_ input: CreateChatRequest.Valid, for budget: ReplyBudget, on db: any Database) async throws -> ChatResponse {
        if input.content != nil, runner.isDraining { throw ChatError.shuttingDown }
        let now = clock.now().atDatabasePrecision
        let title = input.title ?? input.content.flatMap { $0.isEmpty ? nil : ChatTitling.placeholder(from: $0) } ?? ChatTitling.untitled
        let chat = Chat(ownerID: budget.userID, title: title, model: input.model, system: input.system, now: now)
        chat.tools = input.tools
        chat.needsTitle = input.title == nil
        let turn = try await db.transaction { tx -> (user: Message, assistant: Message)? in
            try await chat.create(on: tx)
            guard let content = input.content else { return nil }
            return try await insertTurn(chat: chat, content: content, files: input.attachments, budget: budget, at: now, on: tx)
        }
        lists.changed(budget.userID)
        var messages: [MessageResponse] = []
        if let turn {
            messages = try await begin(turn, in: chat, for: budget)
        }
        return try ChatResponse(chat, messages: messages)
    }

    /// A page of the caller's chats, newest activity first, as JSON. Read straight into the response
    /// rows (``ChatReads``): this is the API's busiest read; its first page is kept (``ChatLists``).
    func list(_ query: ChatListQuery.Valid, for userID: UUID, on db: any Database) async throws -> ByteBuffer {
        guard query.search == nil, query.cursor == nil else { return try await readList(query, for: userID, on: db) }
        return try await lists.firstPage(of: userID, limit: query.limit) { try await readList(query, for: userID, on: db) }
    }

    /// The page as stored, read past ``ChatLists`` (and, for the tests, to compare with what is kept).
    func readList(_ query: ChatListQuery.Valid, for userID: UUID, on db: any Database) async throws -> ByteBuffer {
        let page = try await ChatReads.summaries(of: userID, query, on: db)
        let results = Array(page.prefix(query.limit))
        let next = page.count > query.limit ? results.last.map { ChatCursor(activityAt: $0.activityAt, id: $0.id).encoded } : nil
        return ChatListResponse(results: results.map(ChatSummaryResponse.init), next: next).jsonBuffer(capacity: 1024)
    }

    /// The chat with all its messages; a reply in progress shows the text received so far.
    func get(_ chatID: UUID, for userID: UUID, on db: any Database) async throws -> ChatResponse {
        guard let read = try await ChatReads.chat(chatID, ownedBy: userID, on: db) else { throw ChatError.chatNotFound }
        return ChatResponse(summary: ChatSummaryResponse(read.chat), messages: ChatConversation.overlay(read.messages, in: chatID, bus: bus))
    }

    func update(_ chatID: UUID, _ change: UpdateChatRequest.Valid, for userID: UUID, on db: any Database) async throws -> ChatResponse {
        let chat = try await Chat.find(chatID, ownedBy: userID, on: db)
        if let title = change.title {
            chat.title = title
            chat.needsTitle = false
        }
        if let model = change.model { chat.model = model }
        if let system = change.system { chat.system = system }
        if let tools = change.tools { chat.tools = tools }
        try await chat.save(on: db)
        lists.changed(userID)
        if let title = change.title {
            bus.chatRenamed(chatID, title: title)
        }
        return try await get(chatID, for: userID, on: db)
    }

    func stop(_ chatID: UUID, for userID: UUID, on db: any Database) async throws -> MessageResponse {
        _ = try await Chat.find(chatID, ownedBy: userID, on: db)
        return try await runner.stop(chat: chatID)
    }

    /// The versions at `messageID`'s turn (it and the messages that follow the same message with
    /// the same role), in the order they were written.
    func versions(of messageID: UUID, in chatID: UUID, for userID: UUID, on db: any Database) async throws -> [MessageResponse] {
        _ = try await Chat.find(chatID, ownedBy: userID, on: db)
        let versions = try await ChatReads.versions(of: messageID, in: chatID, on: db)
        guard !versions.isEmpty else { throw ChatError.messageNotFound }
        return versions
    }

    /// Makes `messageID` current: the conversation becomes the way to it, then on from it through
    /// the newest messages that follow. 409 while a reply streams.
    func select(_ messageID: UUID, in chatID: UUID, for userID: UUID, on db: any Database) async throws -> ChatResponse {
        _ = try await Chat.find(chatID, ownedBy: userID, on: db)
        let now = clock.now().atDatabasePrecision
        let revision = try await db.transaction { tx -> Int in
            let tree = ConversationTree(chatID: chatID, sql: try tx.sql())
            let reserved = try await tree.reserve(0, newRevision: true, at: now, limit: rules.settings.maxMessagesPerChat + 1)
            try await tree.makeCurrent(messageID)
            return reserved.revision
        }
        lists.changed(userID)
        try await conversationChanged(chatID, revision: revision, on: db)
        return try await get(chatID, for: userID, on: db)
    }

    /// Tells every stream of the chat that its conversation is now what is stored.
    func conversationChanged(_ chatID: UUID, revision: Int, on db: any Database) async throws {
        let conversation = ChatConversation.overlay(try await ChatReads.messages(of: chatID, on: db), in: chatID, bus: bus)
        bus.conversationChanged(in: chatID, revision: revision, conversation: conversation)
    }
}
