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
        chat.needsTitle = input.title == nil
        let turn = try await db.transaction { tx -> (user: Message, assistant: Message)? in
            try await chat.create(on: tx)
            try await ChatSearch.indexTitle(of: try chat.requireID(), on: try tx.sql())
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
        if let title = change.title {
            chat.title = title
            chat.needsTitle = false
        }
        if let model = change.model { chat.model = model }
        if let system = change.system { chat.system = system }
        try await chat.save(on: db)
        if let title = change.title {
            try await ChatSearch.indexTitle(of: chatID, on: try db.sql())
            bus.chatRenamed(chatID, title: title)
        }
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
        try await ChatSearch.forgetDeletedChats(on: try db.sql())
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
        bus.messageStored(user)
        return [user, try await startReply(turn.assistant, in: chat)]
    }

    /// Announces a stored, empty reply and starts it.
    private func startReply(_ reply: Message, in chat: Chat) async throws -> MessageResponse {
        let assistant = try MessageResponse(reply)
        bus.messageStored(assistant)
        try await runner.start(ReplyJob(
            chatID: try chat.requireID(), messageID: try reply.requireID(),
            sequence: reply.sequence, model: reply.model, system: chat.system, announced: assistant, needsTitle: chat.needsTitle
        ))
        return assistant
    }

    /// Stores the user's message and an empty streaming reply after it, at the end of the current
    /// conversation. The database allows one streaming reply per chat, so a second concurrent send
    /// fails here; a chat holding `CHAT_MAX_MESSAGES` takes no more.
    private func insertTurn(chat: Chat, content: String, at now: Date, on db: any Database) async throws -> (user: Message, assistant: Message) {
        let chatID = try chat.requireID()
        let tree = ConversationTree(chatID: chatID, sql: try db.sql())
        let reserved = try await tree.reserve(2, newRevision: false, at: now, limit: rules.settings.maxMessagesPerChat)
        let leaf = try await tree.leaf()
        let user = Message(chatID: chatID, sequence: reserved.next - 2, role: .user, content: content, status: .complete,
                           model: chat.model, parentID: leaf?.id)
        let assistant = Message(chatID: chatID, sequence: reserved.next - 1, role: .assistant, content: "", status: .streaming,
                                model: chat.model, heartbeatAt: now, parentID: user.id)
        try await tree.insert([user, assistant], at: now)
        chat.nextSequence = reserved.next
        chat.lastMessageAt = now
        chat.activityAt = now
        return (user, assistant)
    }

    // MARK: Versions

    /// A new reply to the same conversation replaces the last one, which stays as an earlier version.
    func regenerate(_ chatID: UUID, model: String?, for userID: UUID, on db: any Database) async throws -> MessageResponse {
        guard !runner.isDraining else { throw ChatError.shuttingDown }
        let chat = try await Chat.find(chatID, ownedBy: userID, on: db)
        let now = clock.now().atDatabasePrecision
        let (reply, revision) = try await db.transaction { tx -> (Message, Int) in
            let tree = ConversationTree(chatID: chatID, sql: try tx.sql())
            let reserved = try await tree.reserve(1, newRevision: true, at: now, limit: rules.settings.maxMessagesPerChat)
            guard let last = try await tree.leaf(), last.role == .assistant, let parent = last.parentID else {
                throw ChatError.nothingToRegenerate
            }
            guard last.status != .streaming else { throw ChatError.replyInProgress }
            try await tree.leave(from: last.sequence)
            let version = try await tree.addVersion(role: .assistant, after: parent)
            let reply = Message(chatID: chatID, sequence: reserved.next - 1, role: .assistant, content: "", status: .streaming,
                                model: model ?? chat.model, heartbeatAt: now, parentID: parent, version: version)
            try await tree.insert([reply], at: now)
            return (reply, reserved.revision)
        }
        try await conversationChanged(chatID, revision: revision, on: db)
        return try await startReply(reply, in: chat)
    }

    /// `messageID` (a question of the current conversation) gets new text as a new version: what
    /// followed it leaves the conversation, and a new reply starts.
    func edit(_ change: EditMessageRequest.Valid, in chatID: UUID, for userID: UUID, on db: any Database) async throws -> SendResponse {
        guard !runner.isDraining else { throw ChatError.shuttingDown }
        let chat = try await Chat.find(chatID, ownedBy: userID, on: db)
        let now = clock.now().atDatabasePrecision
        let (question, reply, revision) = try await db.transaction { tx -> (Message, Message, Int) in
            let tree = ConversationTree(chatID: chatID, sql: try tx.sql())
            let reserved = try await tree.reserve(2, newRevision: true, at: now, limit: rules.settings.maxMessagesPerChat)
            guard let edited = try await tree.message(change.messageID) else { throw ChatError.unknownMessageID }
            guard edited.role == .user, edited.isCurrent else { throw ChatError.notEditable }
            try await tree.leave(from: edited.sequence)
            let version = try await tree.addVersion(role: .user, after: edited.parentID)
            let question = Message(chatID: chatID, sequence: reserved.next - 2, role: .user, content: change.content, status: .complete,
                                   model: chat.model, parentID: edited.parentID, version: version)
            let reply = Message(chatID: chatID, sequence: reserved.next - 1, role: .assistant, content: "", status: .streaming,
                                model: chat.model, heartbeatAt: now, parentID: question.id)
            try await tree.insert([question, reply], at: now)
            return (question, reply, reserved.revision)
        }
        try await conversationChanged(chatID, revision: revision, on: db)
        let user = try MessageResponse(question)
        bus.messageStored(user)
        return SendResponse(userMessage: user, assistantMessage: try await startReply(reply, in: chat))
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
        try await conversationChanged(chatID, revision: revision, on: db)
        return try await get(chatID, for: userID, on: db)
    }

    /// Tells every stream of the chat that its conversation is now what is stored.
    private func conversationChanged(_ chatID: UUID, revision: Int, on db: any Database) async throws {
        let conversation = ChatConversation.overlay(try await ChatReads.messages(of: chatID, on: db), in: chatID, bus: bus)
        bus.conversationChanged(in: chatID, revision: revision, conversation: conversation)
    }
}
