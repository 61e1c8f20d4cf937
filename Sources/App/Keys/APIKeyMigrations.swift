import Fluent
import SQLKit

/// Creates `api_keys`: a user's personal keys, each stored as a keyed hash of its secret (unique:
/// the lookup of every request that carries one), never the secret itself.
struct CreateAPIKeys: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(APIKey.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, "id", onDelete: .cascade))
            .field("name", .string, .required)
            .field("scope", .string, .required)
            .field("prefix", .string, .required)
            .field("secret_hash", .string, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime)
            .field("last_used_at", .datetime)
            .unique(on: "secret_hash", name: "uq_api_keys_secret_hash")
            .create()
        try await database.sql().create(index: "idx_api_keys_user").on(APIKey.schema).column("user_id").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(APIKey.schema).delete()
    }
}
