import Fluent
import SQLKit
import Vapor

/// What a user may do beyond the basics; `basic` for everyone who signs up.
public enum UserRole: String, Codable, Sendable, CaseIterable {
    case basic
    case premium
}

/// A person with an account. Identified by a UUID; signs in by email (stored lowercased, so
/// it is unique regardless of case) and a bcrypt password, or through an OpenID provider.
///
/// `@unchecked Sendable`: Fluent models are mutable classes by design (as in Fluent's own
/// template); an instance is created and used within one request or task and never shared.
public final class User: Model, Authenticatable, @unchecked Sendable {
    public static let schema = "users"

    @ID(key: .id) public var id: UUID?
    @Field(key: "email") public var email: String
    @Field(key: "name") public var name: String
    /// Nil for an account with no usable password (created through an OpenID provider).
    @OptionalField(key: "password_hash") var passwordHash: String?
    @Field(key: "role") public var role: UserRole
    @Field(key: "is_staff") public var isStaff: Bool
    @Field(key: "is_superuser") public var isSuperuser: Bool
    @Field(key: "is_active") public var isActive: Bool
    @OptionalField(key: "last_login") public var lastLogin: Date?
    /// When the email was proven to belong to the account's owner (by a provider, or by the operator who
    /// created the account); nil for a password sign-up, which proves nothing.
    @OptionalField(key: "email_verified_at") public var emailVerifiedAt: Date?
    /// Access tokens issued before this time (whole seconds) are refused: set when the user is
    /// signed out everywhere, so that stolen access tokens die at once rather than at their expiry.
    @OptionalField(key: "sessions_revoked_at") public var sessionsRevokedAt: Date?
    /// Tokens a day this user may spend: nil for the server's quota (`QUOTA_TOKENS_PER_DAY`), -1
    /// for no limit (``UsageLedger``).
    @OptionalField(key: "daily_token_quota") public var dailyTokenQuota: Int64?
    @Timestamp(key: "created_at", on: .create) public var createdAt: Date?
    @Timestamp(key: "updated_at", on: .update) public var updatedAt: Date?

    public init() {}

    public init(
        id: UUID? = nil, email: String, name: String = "", passwordHash: String?,
        role: UserRole = .basic, isStaff: Bool = false, isSuperuser: Bool = false, isActive: Bool = true
    ) {
        self.id = id
        self.email = User.normalize(email: email)
        self.name = name
        self.passwordHash = passwordHash
        self.role = role
        self.isStaff = isStaff
        self.isSuperuser = isSuperuser
        self.isActive = isActive
    }

    /// The form every email is stored and looked up in.
    public static func normalize(email: String) -> String {
        email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    /// The account an access token names, as a request needs it (``SignedInUsers`` keeps it): with
    /// SQLKit, not Fluent's decoding (which finds fields by reflection, and costs more than the
    /// query). All columns but the password hash, which no request after sign-in needs.
    static func findForRequest(_ id: UUID, on db: any Database) async throws -> RequestRow? {
        try await db.sql().select()
            .columns("id", "email", "name", "role", "is_staff", "is_superuser", "is_active", "last_login", "sessions_revoked_at",
                     "daily_token_quota", "created_at", "updated_at")
            .from(schema).where("id", .equal, SQLBind(id)).limit(1).first(decoding: RequestRow.self)
    }

    /// A user as an authenticated request reads it: every column but the password hash.
    struct RequestRow: Decodable, Sendable {
        var id: UUID
        var email: String
        var name: String
        var role: UserRole
        var isStaff: Bool
        var isSuperuser: Bool
        var isActive: Bool
        var lastLogin: Date?
        var sessionsRevokedAt: Date?
        var dailyTokenQuota: Int64?
        var createdAt: Date?
        var updatedAt: Date?

        enum CodingKeys: String, CodingKey {
            case id, email, name, role
            case isStaff = "is_staff", isSuperuser = "is_superuser", isActive = "is_active"
            case lastLogin = "last_login", sessionsRevokedAt = "sessions_revoked_at", dailyTokenQuota = "daily_token_quota"
            case createdAt = "created_at", updatedAt = "updated_at"
        }

        /// A model of it, marked as stored, for this request alone. The password hash is left
        /// unset (not nil), so that saving the model never touches it.
        func makeUser() -> User {
            let user = User()
            user.id = id
            user.email = email
            user.name = name
            user.role = role
            user.isStaff = isStaff
            user.isSuperuser = isSuperuser
            user.isActive = isActive
            user.lastLogin = lastLogin
            user.sessionsRevokedAt = sessionsRevokedAt
            user.dailyTokenQuota = dailyTokenQuota
            user.createdAt = createdAt
            user.updatedAt = updatedAt
            user.$id.exists = true
            return user
        }
    }

    public static func find(email: String, on db: any Database) async throws -> User? {
        try await User.query(on: db).filter(\.$email == normalize(email: email)).first()
    }

    public func requireID() throws(AccountsError) -> UUID {
        guard let id else { throw AccountsError.invalidToken("The account has no identifier.") }
        return id
    }
}
