import Fluent
import Vapor

/// A staff member's sign-in to the admin, kept on the server: a session of the account, which
/// signing the account out everywhere ends with its tokens (``AccountService``); the admin's
/// cookies and pages are ``AdminSessions``. The browser holds a random token in
/// a cookie; only its hash is stored, so a copy of the database does not sign anyone in. Each
/// session has its own CSRF token, which every state-changing form must carry back.
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class AdminSession: Model, @unchecked Sendable {
    static let schema = "admin_sessions"

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var user: User
    @Field(key: "token_hash") var tokenHash: String
    @Field(key: "csrf_token") var csrfToken: String
    @Field(key: "expires_at") var expiresAt: Date
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?

    init() {}

    init(userID: UUID, tokenHash: String, csrfToken: String, expiresAt: Date) {
        self.$user.id = userID
        self.tokenHash = tokenHash
        self.csrfToken = csrfToken
        self.expiresAt = expiresAt
    }
}

struct CreateAdminSessions: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(AdminSession.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("token_hash", .string, .required)
            .field("csrf_token", .string, .required)
            .field("expires_at", .datetime, .required)
            .field("created_at", .datetime)
            .unique(on: "token_hash")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(AdminSession.schema).delete()
    }
}
