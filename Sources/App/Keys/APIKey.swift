import Fluent
import Foundation

/// A personal API key: whose it is, its name and scope, the first characters of its secret (to
/// tell keys apart), and a keyed hash of the secret (``APIKeys/hash(_:)``).
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class APIKey: Model, @unchecked Sendable {
    static let schema = "api_keys"

    /// What a key reaches.
    enum Scope: String, Codable, Sendable, CaseIterable {
        /// `/v1/*` only: a leaked key can spend tokens, not read, delete or publish chats.
        case inference
        /// `/v1/*` and the `/api/` endpoints (but never `/api/keys/`, `/auth/` or `/admin/`).
        case full
    }

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var owner: User
    @Field(key: "name") var name: String
    @Field(key: "scope") var scopeName: String
    @Field(key: "prefix") var prefix: String
    @Field(key: "secret_hash") var secretHash: String
    @Field(key: "created_at") var createdAt: Date
    @OptionalField(key: "expires_at") var expiresAt: Date?
    @OptionalField(key: "last_used_at") var lastUsedAt: Date?

    init() {}

    /// `inference` for a name no release wrote (the narrower scope).
    var scope: Scope { Scope(rawValue: scopeName) ?? .inference }

    init(ownerID: UUID, name: String, scope: Scope, prefix: String, secretHash: String, createdAt: Date, expiresAt: Date?) {
        self.$owner.id = ownerID
        self.name = name
        self.scopeName = scope.rawValue
        self.prefix = prefix
        self.secretHash = secretHash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}
