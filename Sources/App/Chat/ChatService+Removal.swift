import Fluent
import Foundation

/// The one home of chats going away — one chat, every chat of a user who goes with them, the chats
/// idle for too long — so that whatever deletes chats also stops their replies, ends their
/// streams, on every instance, and deletes the files only they used.
extension ChatService {
    /// Deletes the chat and its messages; a reply in progress stops and its streams end.
    func delete(_ chatID: UUID, for userID: UUID, on db: any Database) async throws {
        try await remove(try await Chat.find(chatID, ownedBy: userID, on: db), on: db)
    }

    /// Deletes any chat (the admin's path) with its messages; a reply in progress stops and its streams end.
    func remove(_ chat: Chat, on db: any Database) async throws {
        let chatID = try chat.requireID()
        let files = try await attachments.files.files(usedIn: [chatID], on: db)
        try await chat.delete(on: db)
        lists.changed(chat.$owner.id)
        chatsRemoved([chatID])
        // The chat is gone whatever happens here: files left over are attached to nothing, and the sweep takes them.
        try? await attachments.files.removeUnused(files, on: db)
    }

    /// Deletes `user` with everything they own — chats, messages, tokens, sign-in links and admin
    /// sessions go with them (`ON DELETE CASCADE`) — in one transaction, under the user's lock; once
    /// it has committed, the account is forgotten everywhere and the chats' replies and streams end.
    /// Answers how many chats went. `asChecked`: only if nobody signed the account out (or changed
    /// its password) since `user` was read — its owner's deletion, checked against that state.
    func deleteUser(_ user: User, accounts: AccountService, asChecked: Bool = false, on db: any Database) async throws -> Int {
        let id = try user.requireID()
        // The chats are read in the same transaction, so that every one of their replies and streams is ended.
        let (chatIDs, fileIDs) = try await accounts.changing(on: db) { tx, changes in
            if asChecked { try await accounts.sessions.lockUnchanged(user, on: tx) }
            try await tx.lockForWriting("user:" + id.lowercased, on: usage.kind)
            let chatIDs = try await Chat.query(on: tx).filter(\.$owner.$id == id).all(\.$id)
            let fileIDs = try await attachments.files.stored(ownedBy: id, on: tx)
            try await user.delete(on: tx)
            changes.add(id)
            return (chatIDs, fileIDs)
        }
        lists.changed(id)
        chatsRemoved(chatIDs)
        // The files' rows went with the user; bytes kept outside the database go now.
        await attachments.files.removeBytes(of: fileIDs)
        return chatIDs.count
    }

    /// Deletes the chats with no activity since `cutoff`; their replies stop and streams end.
    /// Answers how many went.
    func removeIdle(before cutoff: Date, on db: any Database) async throws -> Int {
        let (chatIDs, files) = try await db.transaction { tx in
            let ids = try await Chat.query(on: tx).filter(\.$activityAt < cutoff).all(\.$id)
            let files = try await attachments.files.files(usedIn: ids, on: tx)
            try await Chat.query(on: tx).filter(\.$activityAt < cutoff).delete()
            return (ids, files)
        }
        if !chatIDs.isEmpty { lists.changedAll() }
        chatsRemoved(chatIDs)
        try? await attachments.files.removeUnused(files, on: db)
        return chatIDs.count
    }

    /// Stops the replies and ends the streams of chats already deleted.
    func chatsRemoved(_ chatIDs: [UUID]) {
        chatIDs.forEach(bus.chatDeleted)
    }
}
