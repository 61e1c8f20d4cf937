import Fluent
import Foundation

/// A conversation: its owner, title, model and system prompt. Its messages are numbered
/// 1, 2, 3, … in the order they were written (`nextSequence` is the next free number); those of
/// the current conversation, in that order, are the conversation.
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class Chat: Model, @unchecked Sendable {
    static let schema = "chats"

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var owner: User
    @Field(key: "title") var title: String
    @Field(key: "model") var model: String
    @OptionalField(key: "system") var system: String?
    @Field(key: "next_sequence") var nextSequence: Int
    @OptionalField(key: "last_message_at") var lastMessageAt: Date?
    /// When something last happened in the chat; lists are ordered by it, newest first.
    @Field(key: "activity_at") var activityAt: Date
    /// How many times the current conversation was changed by a regeneration, an edit or a switch
    /// of version; stream event ids carry it, so that a reader of an older one starts over.
    @Field(key: "revision") var revision: Int
    /// Made without a title: one is given after the first reply (``ChatTitler``).
    @Field(key: "needs_title") var needsTitle: Bool
    /// The tools offered to the model on every reply, as JSON text (``tools``).
    @Field(key: "tools") var toolsJSON: String
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    @Timestamp(key: "updated_at", on: .update) var updatedAt: Date?

    init() {}

    init(ownerID: UUID, title: String, model: String, system: String?, now: Date) {
        self.$owner.id = ownerID
        self.title = title
        self.model = model
        self.system = system
        self.nextSequence = 1
        self.activityAt = now
        self.revision = 0
        self.needsTitle = false
        self.toolsJSON = "[]"
    }

    /// `<server>.<tool>` and `<server>.*` entries (``ToolCatalog/problems(in:)``).
    var tools: [String] {
        get { Chat.tools(fromJSON: toolsJSON) }
        set { toolsJSON = (try? String(decoding: JSONEncoder().encode(newValue), as: UTF8.self)) ?? "[]" }
    }

    static func tools(fromJSON json: String) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data(json.utf8))) ?? []
    }

    /// The caller's chat with this id; someone else's is as absent as one that never existed.
    static func find(_ id: UUID, ownedBy userID: UUID, on db: any Database) async throws -> Chat {
        guard let chat = try await Chat.query(on: db).filter(\.$id == id).filter(\.$owner.$id == userID).first() else {
            throw ChatError.chatNotFound
        }
        return chat
    }
}
