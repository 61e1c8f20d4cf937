import Fluent
import Foundation

/// One issued refresh token (its id is the token's `jti`). Tokens that descend from one sign-in
/// share a family: each refresh spends its token and issues the next; presenting a spent token
/// again means it was stolen, and the whole family is revoked.
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class RefreshToken: Model, @unchecked Sendable {
    static let schema = "refresh_tokens"

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var user: User
    @Field(key: "family_id") var familyID: UUID
    @Field(key: "expires_at") var expiresAt: Date
    @OptionalField(key: "used_at") var usedAt: Date?
    @OptionalField(key: "revoked_at") var revokedAt: Date?
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    /// The `jti` of the access token issued with it: what ties an access token to its session.
    @OptionalField(key: "access_jti") var accessJTI: String?
    /// When the family's sign-in happened (a refresh keeps it): how recently the session proved
    /// who it is, whatever its tokens' `iat`.
    @OptionalField(key: "signed_in_at") var signedInAt: Date?

    init() {}

    init(id: UUID, userID: UUID, familyID: UUID, expiresAt: Date, accessJTI: String, signedInAt: Date) {
        self.id = id
        self.$user.id = userID
        self.familyID = familyID
        self.expiresAt = expiresAt
        self.accessJTI = accessJTI
        self.signedInAt = signedInAt
    }
}
