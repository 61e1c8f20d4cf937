import Fluent
import Foundation
import SQLKit

/// A Google account linked to a user: signing in with Google as `subject` signs in as that user.
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class GoogleAccount: Model, @unchecked Sendable {
    static let schema = "google_accounts"

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var user: User
    /// Google's stable id for the account (`sub`).
    @Field(key: "subject") var subject: String
    /// The account's email when it was last used to sign in.
    @Field(key: "email") var email: String
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    @Timestamp(key: "updated_at", on: .update) var updatedAt: Date?

    init() {}

    init(userID: UUID, subject: String, email: String) {
        self.$user.id = userID
        self.subject = subject
        self.email = email
    }
}

/// A sign-in begun at `/auth/google/login/` and not finished yet: its one-time `state`, the
/// `nonce` and PKCE verifier it sent, where to return, and the hash of the secret in the browser's
/// cookie, so that only the browser that began it can finish it, once.
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class GoogleLoginAttempt: Model, @unchecked Sendable {
    static let schema = "google_login_attempts"

    @ID(key: .id) var id: UUID?
    @Field(key: "state") var state: String
    @Field(key: "browser_hash") var browserHash: String
    @Field(key: "nonce") var nonce: String
    @Field(key: "code_verifier") var codeVerifier: String
    @OptionalField(key: "return_to") var returnTo: String?
    @Field(key: "expires_at") var expiresAt: Date

    init() {}

    init(state: String, browserHash: String, nonce: String, codeVerifier: String, returnTo: String?, expiresAt: Date) {
        self.state = state
        self.browserHash = browserHash
        self.nonce = nonce
        self.codeVerifier = codeVerifier
        self.returnTo = returnTo
        self.expiresAt = expiresAt
    }
}

struct CreateGoogleAccounts: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(GoogleAccount.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("subject", .string, .required)
            .field("email", .string, .required)
            .field("created_at", .datetime)
            .field("updated_at", .datetime)
            .unique(on: "subject", name: "uq_google_accounts_subject")
            .create()
        try await database.sql().create(index: "idx_google_accounts_user")
            .on(GoogleAccount.schema).column("user_id").run()
        try await database.schema(GoogleLoginAttempt.schema)
            .id()
            .field("state", .string, .required)
            .field("browser_hash", .string, .required)
            .field("nonce", .string, .required)
            .field("code_verifier", .string, .required)
            .field("return_to", .string)
            .field("expires_at", .datetime, .required)
            .unique(on: "state", name: "uq_google_login_attempts_state")
            .create()
        try await database.sql().create(index: "idx_google_login_attempts_expires")
            .on(GoogleLoginAttempt.schema).column("expires_at").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(GoogleLoginAttempt.schema).delete()
        try await database.schema(GoogleAccount.schema).delete()
    }
}

/// A one-time code standing for a finished Google sign-in, handed to the browser in the return
/// URL's fragment and exchanged for the session at `POST /auth/google/exchange/`. Only its hash is
/// stored; it is deleted when spent, and is worth nothing after ``GoogleSignIn/codeLifetime``.
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class GoogleSignInCode: Model, @unchecked Sendable {
    static let schema = "google_sign_in_codes"

    @ID(key: .id) var id: UUID?
    @Field(key: "code_hash") var codeHash: String
    @Parent(key: "user_id") var user: User
    /// ``AccountNotice`` raw values, comma-separated: what the session's answer must tell the user.
    @Field(key: "notices") var notices: String
    @Field(key: "expires_at") var expiresAt: Date

    init() {}

    init(codeHash: String, userID: UUID, notices: String, expiresAt: Date) {
        self.codeHash = codeHash
        self.$user.id = userID
        self.notices = notices
        self.expiresAt = expiresAt
    }
}

struct CreateGoogleSignInCodes: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(GoogleSignInCode.schema)
            .id()
            .field("code_hash", .string, .required)
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("notices", .string, .required)
            .field("expires_at", .datetime, .required)
            .unique(on: "code_hash", name: "uq_google_sign_in_codes_hash")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(GoogleSignInCode.schema).delete()
    }
}
