import Fluent
import Foundation

/// An account at an OpenID provider linked to a user: signing in there as `subject` signs in as
/// that user.
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class Identity: Model, @unchecked Sendable {
    static let schema = "identities"

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var user: User
    /// The provider's name (`google`, or one of `OIDC_PROVIDERS`).
    @Field(key: "provider") var provider: String
    /// The provider's stable id for the account (`sub`).
    @Field(key: "subject") var subject: String
    /// The account's email when it was last used to sign in.
    @Field(key: "email") var email: String
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    @Timestamp(key: "updated_at", on: .update) var updatedAt: Date?

    init() {}

    init(userID: UUID, provider: String, subject: String, email: String) {
        self.$user.id = userID
        self.provider = provider
        self.subject = subject
        self.email = email
    }
}

/// A sign-in begun at a provider's login route and not finished yet: its one-time `state`, the
/// `nonce` and PKCE verifier it sent, where to return, and the hash of the secret in the browser's
/// cookie, so that only the browser that began it can finish it, once, at the same provider.
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class SignInAttempt: Model, @unchecked Sendable {
    static let schema = "sign_in_attempts"

    @ID(key: .id) var id: UUID?
    @Field(key: "provider") var provider: String
    @Field(key: "state") var state: String
    @Field(key: "browser_hash") var browserHash: String
    @Field(key: "nonce") var nonce: String
    @Field(key: "code_verifier") var codeVerifier: String
    @OptionalField(key: "return_to") var returnTo: String?
    @Field(key: "expires_at") var expiresAt: Date

    init() {}

    init(provider: String, state: String, browserHash: String, nonce: String, codeVerifier: String, returnTo: String?, expiresAt: Date) {
        self.provider = provider
        self.state = state
        self.browserHash = browserHash
        self.nonce = nonce
        self.codeVerifier = codeVerifier
        self.returnTo = returnTo
        self.expiresAt = expiresAt
    }
}

/// A one-time code standing for a finished sign-in at any provider, handed to the browser in the
/// return URL's fragment and exchanged for the session at `POST /auth/exchange/`. Only its hash is
/// stored; it is deleted when spent, and is worth nothing after ``SignInCodes/lifetime``.
///
/// `@unchecked Sendable`: as for every Fluent model, an instance never leaves the task that loaded it.
final class SignInCode: Model, @unchecked Sendable {
    static let schema = "sign_in_codes"

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
