import Fluent
import SQLKit

/// The tables of the first sign-in, Google's alone (kept so that every database migrates the same
/// way; ``GeneralizeSignIn`` moves their rows on).
struct CreateGoogleAccounts: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("google_accounts")
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("subject", .string, .required)
            .field("email", .string, .required)
            .field("created_at", .datetime)
            .field("updated_at", .datetime)
            .unique(on: "subject", name: "uq_google_accounts_subject")
            .create()
        try await database.sql().create(index: "idx_google_accounts_user").on("google_accounts").column("user_id").run()
        try await database.schema("google_login_attempts")
            .id()
            .field("state", .string, .required)
            .field("browser_hash", .string, .required)
            .field("nonce", .string, .required)
            .field("code_verifier", .string, .required)
            .field("return_to", .string)
            .field("expires_at", .datetime, .required)
            .unique(on: "state", name: "uq_google_login_attempts_state")
            .create()
        try await database.sql().create(index: "idx_google_login_attempts_expires").on("google_login_attempts").column("expires_at").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("google_login_attempts").delete()
        try await database.schema("google_accounts").delete()
    }
}

struct CreateGoogleSignInCodes: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("google_sign_in_codes")
            .id()
            .field("code_hash", .string, .required)
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("notices", .string, .required)
            .field("expires_at", .datetime, .required)
            .unique(on: "code_hash", name: "uq_google_sign_in_codes_hash")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("google_sign_in_codes").delete()
    }
}

/// Sign-in through any OpenID provider: identities, attempts and one-time codes name their
/// provider. Linked Google accounts become identities of `google`; sign-ins in flight (ten minutes
/// at most) and codes not yet redeemed (a minute) are dropped with their tables.
struct GeneralizeSignIn: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Identity.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("provider", .string, .required)
            .field("subject", .string, .required)
            .field("email", .string, .required)
            .field("created_at", .datetime)
            .field("updated_at", .datetime)
            .unique(on: "provider", "subject", name: "uq_identities_provider_subject")
            .create()
        try await database.sql().create(index: "idx_identities_user").on(Identity.schema).column("user_id").run()
        try await database.sql().raw("""
            INSERT INTO identities (id, user_id, provider, subject, email, created_at, updated_at)
            SELECT id, user_id, 'google', subject, email, created_at, updated_at FROM google_accounts
            """).run()
        try await database.schema(SignInAttempt.schema)
            .id()
            .field("provider", .string, .required)
            .field("state", .string, .required)
            .field("browser_hash", .string, .required)
            .field("nonce", .string, .required)
            .field("code_verifier", .string, .required)
            .field("return_to", .string)
            .field("expires_at", .datetime, .required)
            .unique(on: "state", name: "uq_sign_in_attempts_state")
            .create()
        try await database.sql().create(index: "idx_sign_in_attempts_expires").on(SignInAttempt.schema).column("expires_at").run()
        try await database.schema(SignInCode.schema)
            .id()
            .field("code_hash", .string, .required)
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("notices", .string, .required)
            .field("expires_at", .datetime, .required)
            .unique(on: "code_hash", name: "uq_sign_in_codes_hash")
            .create()
        try await CreateGoogleSignInCodes().revert(on: database)
        try await CreateGoogleAccounts().revert(on: database)
    }

    func revert(on database: any Database) async throws {
        try await CreateGoogleAccounts().prepare(on: database)
        try await CreateGoogleSignInCodes().prepare(on: database)
        try await database.sql().raw("""
            INSERT INTO google_accounts (id, user_id, subject, email, created_at, updated_at)
            SELECT id, user_id, subject, email, created_at, updated_at FROM identities WHERE provider = 'google'
            """).run()
        try await database.schema(SignInCode.schema).delete()
        try await database.schema(SignInAttempt.schema).delete()
        try await database.schema(Identity.schema).delete()
    }
}
