import Foundation
import SQLKit

/// What other instances say, and what a ``ReplyFollower`` needs of the bus.
extension ChatBus: FollowerHost {
    func received(_ notification: BusNotification, from sender: String) {
        switch notification {
        case .stopRequested(let chat):
            replies.stop(in: chat, .stoppedByUser)
        case .chatDeleted(let chat):
            replies.stop(in: chat, .chatDeleted)
            hub.chatDeleted(chat)
        case .syncRequested(let chat):
            guard let reply = replies.reply(in: chat) else { return }
            work.run { await self.saveForFollowers(reply) }
        case .following, .unfollowed:
            break  // the transport's bookkeeping
        case .userChanged(let user):
            cachedChangesHandler(.account(user))
        case .chatListChanged(let user):
            cachedChangesHandler(.chatList(user))
        case .conversationChanged(let chat, let revision):
            work.run { await self.readConversation(of: chat, revision: revision) }
        case .chatRenamed(let chat, let title?):
            hub.chatRenamed(chat, title: title)
        case .chatRenamed(let chat, nil):
            work.run { await self.readTitle(of: chat) }
        case .resync:
            // The sender dropped notifications: as if this instance had not been listening.
            lostTrack()
        case .delta(let piece):
            followers.withLockedValue { $0[piece.chat] }?.receive(notification)
        case .messageStored(let chat, _), .replyEnded(let chat, _), .replySaved(let chat, _, _):
            followers.withLockedValue { $0[chat] }?.receive(notification)
        }
    }

    /// Notifications may have been missed (the listener was down, or a sender dropped some): every
    /// followed chat catches up from the stored chat and asks again how far its reply is, and every
    /// account and chat list kept in memory is read again.
    func lostTrack() {
        cachedChangesHandler(nil)
        for follower in followers.withLockedValue({ Array($0.values) }) {
            follower.lostTrack()
            requestSync(follower.chat)
        }
    }

    /// Saves a reply this instance runs and tells its followers how far the saved text goes.
    private func saveForFollowers(_ reply: RunningReply) async {
        await reply.saves.run { [store, transport, logger] in
            let snapshot = reply.snapshot()
            do {
                guard try await store.checkpoint(reply.job.messageID, text: snapshot.text, reasoning: snapshot.reasoning,
                                                 toolCalls: snapshot.toolCalls, now: Date()) else { return }
                reply.saved(snapshot)
                transport?.send(.replySaved(chat: reply.job.chatID, message: reply.job.messageID, bytes: snapshot.bytes))
            } catch {
                logger.warning("event bus: could not save a reply for the instances following it", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Another instance changed the chat's current conversation: this instance's streams get it
    /// as stored (when the read fails, they keep what they have until they reconnect).
    private func readConversation(of chat: UUID, revision: Int) async {
        guard hub.hasStreams(on: chat) else { return }
        do {
            hub.conversationChanged(in: chat, revision: revision, conversation: try await conversation(of: chat))
        } catch {
            logger.warning("event bus: could not read a changed conversation", metadata: ["chat": "\(chat)", "error": "\(error)"])
        }
    }

    /// Another instance renamed the chat with a title too long to travel: read it.
    private func readTitle(of chat: UUID) async {
        guard hub.hasStreams(on: chat) else { return }
        do {
            let row = try await store.database().sql().select().column("title").from(Chat.schema).where("id", .equal, SQLBind(chat)).first()
            if let title = try row?.decode(column: "title", as: String.self) { hub.chatRenamed(chat, title: title) }
        } catch {
            logger.warning("event bus: could not read a changed title", metadata: ["chat": "\(chat)", "error": "\(error)"])
        }
    }

    // MARK: FollowerHost

    func publish(_ frame: StreamFrame, to chat: UUID) { hub.publish(frame, to: chat) }
    func publishStored(_ message: MessageResponse) { hub.messageStored(message) }
    func publishDelta(_ delta: ReplyDelta) { hub.replyDelta(delta) }

    func storedMessage(_ id: UUID) async throws -> MessageResponse? {
        try await store.message(id)
    }

    /// The chat as a stream replays it (stored, with the live text laid over).
    func conversation(of chat: UUID) async throws -> [MessageResponse] {
        ChatConversation.overlay(try await ChatReads.messages(of: chat, on: store.database()), in: chat, bus: self)
    }

    func announceFollowing(_ chat: UUID) {
        transport?.send(.following(chat: chat))
    }

    func requestSync(_ chat: UUID) {
        transport?.send(.syncRequested(chat: chat))
    }

    func run(_ work: @escaping @Sendable () async -> Void) {
        self.work.run(work)
    }
}
