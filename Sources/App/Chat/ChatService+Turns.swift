import Fluent
import Foundation
import SQLKit

/// The operations that start a reply: send, regenerate, edit (and create with a first message).
/// Each stores its turn in one transaction that also admits the reply under its user's daily quota
/// (``UsageLedger/admitReply(of:quota:estimate:on:)``): refused, nothing is stored.
extension ChatService {
    /// Stores the user's message and starts the reply; 409 while a reply is still streaming.
    func send(_ input: SendMessageRequest.Valid, to chatID: UUID, for budget: ReplyBudget, on db: any Database) async throws -> SendResponse {
        guard !runner.isDraining else { throw ChatError.shuttingDown }
        let chat = try await Chat.find(chatID, ownedBy: budget.userID, on: db)
        let now = clock.now().atDatabasePrecision
        let turn = try await db.transaction { tx in
            try await insertTurn(chat: chat, content: input.content, files: input.attachments, budget: budget, at: now, on: tx)
        }
        lists.changed(budget.userID)
        let messages = try await begin(turn, in: chat, for: budget)
        return SendResponse(userMessage: messages[0], assistantMessage: messages[1])
    }

    /// A new reply to the same conversation replaces the last one, which stays as an earlier version.
    func regenerate(_ chatID: UUID, model: String?, for budget: ReplyBudget, on db: any Database) async throws -> MessageResponse {
        guard !runner.isDraining else { throw ChatError.shuttingDown }
        let chat = try await Chat.find(chatID, ownedBy: budget.userID, on: db)
        let now = clock.now().atDatabasePrecision
        let (reply, revision) = try await db.transaction { tx -> (Message, Int) in
            let tree = ConversationTree(chatID: chatID, sql: try tx.sql())
            let reserved = try await tree.reserve(1, newRevision: true, at: now, limit: rules.settings.maxMessagesPerChat)
            guard let last = try await tree.leaf(), last.role == .assistant, let parent = last.parentID else {
                throw ChatError.nothingToRegenerate
            }
            guard last.status != .streaming else { throw ChatError.replyInProgress }
            let files = try await attachments.inConversation(chatID, before: last.sequence, on: tx)
            try await attachments.check(files, model: model ?? chat.model, on: tx)
            try await tree.leave(from: last.sequence)
            let version = try await tree.addVersion(role: .assistant, after: parent)
            let reply = Message(chatID: chatID, sequence: reserved.next - 1, role: .assistant, content: "", status: .streaming,
                                model: model ?? chat.model, heartbeatAt: now, parentID: parent, version: version)
            reply.reservedTokens = try await admit(budget, chat: chat, tree: tree, adding: nil, files: files, on: tx)
            try await tree.insert([reply], at: now)
            return (reply, reserved.revision)
        }
        lists.changed(budget.userID)
        try await conversationChanged(chatID, revision: revision, on: db)
        return try await startReply(reply, in: chat, for: budget)
    }

    /// `messageID` (a question of the current conversation) gets new text as a new version: what
    /// followed it leaves the conversation, and a new reply starts.
    func edit(_ change: EditMessageRequest.Valid, in chatID: UUID, for budget: ReplyBudget, on db: any Database) async throws -> SendResponse {
        guard !runner.isDraining else { throw ChatError.shuttingDown }
        let chat = try await Chat.find(chatID, ownedBy: budget.userID, on: db)
        let now = clock.now().atDatabasePrecision
        let (question, reply, revision) = try await db.transaction { tx -> (Message, Message, Int) in
            let tree = ConversationTree(chatID: chatID, sql: try tx.sql())
            let reserved = try await tree.reserve(2, newRevision: true, at: now, limit: rules.settings.maxMessagesPerChat)
            guard let edited = try await tree.message(change.messageID) else { throw ChatError.unknownMessageID }
            guard edited.role == .user, edited.isCurrent else { throw ChatError.notEditable }
            // Without `attachments`, the new version keeps the original's files.
            let files: [FileRecord]
            if let ids = change.attachments {
                files = try await attachments.claim(ids, for: budget.userID, on: tx)
            } else {
                files = try await attachments.used(by: edited.id, on: tx)
            }
            if change.content.isEmpty, files.isEmpty { throw RequestError.invalidFields(["content": ["This field is required."]]) }
            let earlier = try await attachments.inConversation(chatID, before: edited.sequence, on: tx)
            try await attachments.check(earlier + files, model: chat.model, on: tx)
            try attachments.checkFits(files, content: change.content, model: chat.model)
            try await tree.leave(from: edited.sequence)
            let version = try await tree.addVersion(role: .user, after: edited.parentID)
            let question = Message(chatID: chatID, sequence: reserved.next - 2, role: .user, content: change.content, status: .complete,
                                   model: chat.model, parentID: edited.parentID, version: version)
            question.attachments = files.map(FileResponse.init)
            let reply = Message(chatID: chatID, sequence: reserved.next - 1, role: .assistant, content: "", status: .streaming,
                                model: chat.model, heartbeatAt: now, parentID: question.id)
            reply.reservedTokens = try await admit(budget, chat: chat, tree: tree, adding: change.content, files: earlier + files, on: tx)
            try await tree.insert([question, reply], at: now)
            try await attachments.link(files, to: question, on: tx)
            return (question, reply, reserved.revision)
        }
        lists.changed(budget.userID)
        try await conversationChanged(chatID, revision: revision, on: db)
        let user = try MessageResponse(question)
        bus.messageStored(user)
        return SendResponse(userMessage: user, assistantMessage: try await startReply(reply, in: chat, for: budget))
    }

    /// Announces a stored turn and starts its reply.
    func begin(_ turn: (user: Message, assistant: Message), in chat: Chat, for budget: ReplyBudget) async throws -> [MessageResponse] {
        let user = try MessageResponse(turn.user)
        bus.messageStored(user)
        return [user, try await startReply(turn.assistant, in: chat, for: budget)]
    }

    /// Stores the user's message and an empty streaming reply after it, at the end of the current
    /// conversation. The database allows one streaming reply per chat, so a second concurrent send
    /// fails here; a chat holding `CHAT_MAX_MESSAGES` takes no more.
    func insertTurn(chat: Chat, content: String, files fileIDs: [UUID], budget: ReplyBudget, at now: Date,
                    on db: any Database) async throws -> (user: Message, assistant: Message) {
        let chatID = try chat.requireID()
        let tree = ConversationTree(chatID: chatID, sql: try db.sql())
        let reserved = try await tree.reserve(2, newRevision: false, at: now, limit: rules.settings.maxMessagesPerChat)
        let files = try await attachments.claim(fileIDs, for: budget.userID, on: db)
        // The model reads the whole conversation again: its earlier files too.
        let conversationFiles = try await attachments.inConversation(chatID, on: db) + files
        try await attachments.check(conversationFiles, model: chat.model, on: db)
        try attachments.checkFits(files, content: content, model: chat.model)
        let leaf = try await tree.leaf()
        let user = Message(chatID: chatID, sequence: reserved.next - 2, role: .user, content: content, status: .complete,
                           model: chat.model, parentID: leaf?.id)
        user.attachments = files.map(FileResponse.init)
        let assistant = Message(chatID: chatID, sequence: reserved.next - 1, role: .assistant, content: "", status: .streaming,
                                model: chat.model, heartbeatAt: now, parentID: user.id)
        assistant.reservedTokens = try await admit(budget, chat: chat, tree: tree, adding: content, files: conversationFiles, on: db)
        try await tree.insert([user, assistant], at: now)
        try await attachments.link(files, to: user, on: db)
        chat.nextSequence = reserved.next
        chat.lastMessageAt = now
        chat.activityAt = now
        return (user, assistant)
    }

    /// Admits the reply about to be stored under the caller's quota; answers the tokens it
    /// reserves: its prompt as estimated now — the current conversation, `adding` a new question,
    /// the conversation's `files` and the system prompt — at most the model's context window.
    private func admit(_ budget: ReplyBudget, chat: Chat, tree: ConversationTree, adding content: String?, files: [FileRecord],
                       on db: any Database) async throws -> Int {
        let conversation = try await tree.estimatedTokens() + files.reduce(0) { $0 + Attachments.estimatedTokens($1) }
        let added = [content, chat.system].compactMap { $0 }.reduce(0) { $0 + ConversationWindow.estimatedTokens($1) }
        let estimate = min(conversation + added, rules.catalog.contextWindow(of: chat.model))
        return try await usage.admitReply(of: budget.userID, quota: budget.quota, estimate: estimate, on: db)
    }

    /// Announces a stored, empty reply and starts it.
    private func startReply(_ reply: Message, in chat: Chat, for budget: ReplyBudget) async throws -> MessageResponse {
        let assistant = try MessageResponse(reply)
        bus.messageStored(assistant)
        try await runner.start(ReplyJob(
            userID: budget.userID, chatID: try chat.requireID(), messageID: try reply.requireID(),
            sequence: reply.sequence, model: reply.model, system: chat.system, announced: assistant, needsTitle: chat.needsTitle,
            tools: chat.tools, quota: budget.quota
        ))
        return assistant
    }
}
