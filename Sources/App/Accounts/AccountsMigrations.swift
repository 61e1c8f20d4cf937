import Fluent
import SQLKit

/// Creates `users`: email unique (stored lowercased), with indexes for the admin's lists.
struct CreateUsers: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(User.schema)
            .id()
            .field("email", .string, .required)
            .field("name", .string, .required)
            .field("password_hash", .string)
            .field("role", .string, .required)
            .field("is_staff", .bool, .required)
            .field("is_superuser", .bool, .required)
            .field("is_active", .bool, .required)
            .field("last_login", .datetime)
            .field("created_at", .datetime)
            .field("updated_at", .datetime)
            .unique(on: "email", name: "uq_users_email")
            .create()
        try await database.sql().create(index: "idx_users_created_at")
            .on(User.schema).column("created_at").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(User.schema).delete()
    }
}

/// Creates `refresh_tokens`, indexed by family (revocation), user and expiry (clean-up).
struct CreateRefreshTokens: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(RefreshToken.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("family_id", .uuid, .required)
            .field("expires_at", .datetime, .required)
            .field("used_at", .datetime)
            .field("revoked_at", .datetime)
            .field("created_at", .datetime)
            .create()
        let sql = try database.sql()
        try await sql.create(index: "idx_refresh_tokens_family").on(RefreshToken.schema).column("family_id").run()
        try await sql.create(index: "idx_refresh_tokens_user").on(RefreshToken.schema).column("user_id").run()
        try await sql.create(index: "idx_refresh_tokens_expires").on(RefreshToken.schema).column("expires_at").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(RefreshToken.schema).delete()
    }
}

/// Adds `refresh_tokens.access_jti` (the access token issued with each refresh token) and
/// `refresh_tokens.signed_in_at` (when its family signed in): an access token leads to the time
/// its session signed in, which a refresh does not move. Earlier tokens have neither (their
/// sessions count as signed in long ago).
struct AddRefreshTokenSignIn: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(RefreshToken.schema).field("access_jti", .string).update()
        try await database.schema(RefreshToken.schema).field("signed_in_at", .datetime).update()
        try await database.sql().create(index: "idx_refresh_tokens_access").on(RefreshToken.schema).column("access_jti").run()
    }

    func revert(on database: any Database) async throws {
        try await database.sql().drop(index: "idx_refresh_tokens_access").run()
        try await database.schema(RefreshToken.schema).deleteField("signed_in_at").update()
        try await database.schema(RefreshToken.schema).deleteField("access_jti").update()
    }
}

/// Adds `users.email_verified_at` (whether anyone proved the account owns its email) and
/// `users.sessions_revoked_at` (access tokens issued before it are refused).
struct AddAccountProofColumns: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(User.schema).field("email_verified_at", .datetime).update()
        try await database.schema(User.schema).field("sessions_revoked_at", .datetime).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(User.schema).deleteField("sessions_revoked_at").update()
        try await database.schema(User.schema).deleteField("email_verified_at").update()
    }
}
