import Fluent
import Foundation

/// A share link: a snapshot of a chat's conversation as it was when shared (later changes to the
/// chat do not reach it), readable by whoever holds its id while sharing allows (`SHARE_LINKS`).
/// Revoking deletes it; deleting the chat or its owner deletes it too (cascade).
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class ShareLink: Model, @unchecked Sendable {
    static let schema = "shares"

    /// 24 base64url characters of 144 random bits: the link's only secret.
    @ID(custom: "id", generatedBy: .user) var id: String?
    @Parent(key: "chat_id") var chat: Chat
    @Parent(key: "user_id") var owner: User
    @Field(key: "title") var title: String
    /// The messages as ``SharedMessage``s, JSON (served as stored).
    @Field(key: "snapshot") var snapshot: String
    /// The ids of the files the snapshot shows, comma-separated (its images are served by id).
    @Field(key: "file_ids") var fileIDs: String
    @Field(key: "created_at") var createdAt: Date
    @OptionalField(key: "expires_at") var expiresAt: Date?

    init() {}

    init(id: String, chatID: UUID, ownerID: UUID, title: String, snapshot: String, fileIDs: [String] = [], createdAt: Date, expiresAt: Date?) {
        self.id = id
        self.$chat.id = chatID
        self.$owner.id = ownerID
        self.title = title
        self.snapshot = snapshot
        self.fileIDs = fileIDs.joined(separator: ",")
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// Creates `shares`.
struct CreateShares: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(ShareLink.schema)
            .field("id", .string, .identifier(auto: false))
            .field("chat_id", .uuid, .required, .references(Chat.schema, "id", onDelete: .cascade))
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("title", .string, .required)
            .field("snapshot", .string, .required)
            .field("file_ids", .string, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime)
            .create()
        try await database.sql().create(index: "idx_shares_user").on(ShareLink.schema).column("user_id").run()
        try await database.sql().create(index: "idx_shares_chat").on(ShareLink.schema).column("chat_id").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(ShareLink.schema).delete()
    }
}
