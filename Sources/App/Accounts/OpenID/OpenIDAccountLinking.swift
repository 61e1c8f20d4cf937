import Fluent
import Foundation

/// Finds the user an OpenID identity signs in as: the one it is linked to; else the account with
/// its email, where the provider may join it; else a new user with no password.
///
/// Joining by email trusts the provider's proof of the address, so it is where an identity
/// provider could take over accounts:
/// - Google's proof joins any account. An account that signed up with a password never proved
///   its email, so whoever registered it may not be the owner (a squatter who registers
///   `victim@gmail.com` first): the Google identity wins, the password is removed and every
///   session signed out (``AccountNotice/passwordRemoved``). An unproven account without a
///   password (made by another provider that did not verify the address) is not joined.
/// - Any other provider joins only where its operator allows it (`OIDC_<NAME>_LINK_BY_EMAIL`), the
///   ID token says `email_verified: true`, and the account is not a password account nobody
///   proved (a squatter's, perhaps); otherwise the sign-in is refused with
///   ``SignInError/accountExists(provider:)`` and the account is untouched. Its proof of an email
///   counts (the account made is proven) only where it may join accounts.
/// Staff status follows the provider's groups claim at every sign-in when `STAFF_GROUPS` is set
/// (superusers, the operator's own accounts, keep theirs).
struct OpenIDAccountLinking: Sendable {
    let accounts: AccountService
    let clock: any WallClock

    func user(for claims: OpenIDClaims, at provider: OpenIDProviderSettings, on db: any Database) async throws -> SignedIn {
        do {
            return try await accounts.changing(on: db) { tx, changes in try await link(claims, provider, on: tx, changes: changes) }
        } catch let error as any DatabaseError where error.isConstraintFailure {
            // The same identity or email signed in twice at once: the other made the rows; use them.
            return try await accounts.changing(on: db) { tx, changes in try await link(claims, provider, on: tx, changes: changes) }
        }
    }

    private func link(_ claims: OpenIDClaims, _ provider: OpenIDProviderSettings, on db: any Database,
                      changes: AccountChanges) async throws -> SignedIn {
        let email = User.normalize(email: claims.email ?? "")
        let now = clock.now()
        let name = provider.displayName
        if let linked = try await Identity.query(on: db).filter(\.$provider == provider.name).filter(\.$subject == claims.sub)
            .with(\.$user).first() {
            guard linked.user.isActive else { throw SignInError.accountInactive }
            if linked.email != email {
                linked.email = email
                try await linked.save(on: db)
            }
            linked.user.lastLogin = now
            try await save(linked.user, applyingGroupsOf: claims, at: provider, on: db, changes: changes)
            return SignedIn(user: linked.user, notices: [])
        }
        var notices: [AccountNotice] = []
        let user: User
        // Proof of the address counts only from a provider trusted to join accounts by it: an
        // account another provider made is not one Google's sign-in may then join.
        let proven = provider.kind == .google || (provider.linkByEmail && claims.emailVerified == true)
        if let existing = try await User.find(email: email, on: db) {
            guard existing.isActive else { throw SignInError.accountInactive }
            switch provider.kind {
            case .google where existing.emailVerifiedAt == nil && existing.passwordHash != nil:
                try await accounts.removePassword(of: existing, on: db, changes: changes)
                notices.append(.passwordRemoved)
                db.logger.notice("google sign-in proved an email held by an unproven password account; password removed, sessions revoked",
                                 metadata: ["user": "\(existing.id?.lowercased ?? "?")"])
            case .google where existing.emailVerifiedAt == nil:
                throw SignInError.accountExists(provider: name)
            case .google:
                break
            case .generic:
                // A password account nobody proved may be a squatter's: joining it would hand the
                // owner's identity to whoever set that password. Only Google's proof takes it back.
                guard provider.linkByEmail, claims.emailVerified == true, existing.emailVerifiedAt != nil || existing.passwordHash == nil else {
                    throw SignInError.accountExists(provider: name)
                }
            }
            user = existing
        } else {
            user = User(email: email, name: String((claims.name ?? "").unicodeScalars.prefix(150)), passwordHash: nil)
        }
        if proven { user.emailVerifiedAt = user.emailVerifiedAt ?? now }
        user.lastLogin = now
        try await save(user, applyingGroupsOf: claims, at: provider, on: db, changes: changes)
        try await Identity(userID: try user.requireID(), provider: provider.name, subject: claims.sub, email: email).create(on: db)
        return SignedIn(user: user, notices: notices)
    }

    /// Saves `user`, staff exactly when a member of one of the provider's staff groups (where the
    /// provider has them); one who stops being staff leaves the admin at once.
    private func save(_ user: User, applyingGroupsOf claims: OpenIDClaims, at provider: OpenIDProviderSettings, on db: any Database,
                      changes: AccountChanges) async throws {
        var lostStaff = false
        if !provider.staffGroups.isEmpty, !user.isSuperuser {
            let groups = Set(claims.strings[provider.groupsClaim] ?? [])
            let staff = !groups.isDisjoint(with: provider.staffGroups)
            lostStaff = user.isStaff && !staff
            if user.isStaff != staff, let id = user.id { changes.add(id) }
            user.isStaff = staff
        }
        try await user.save(on: db)
        if lostStaff {
            try await AdminSession.query(on: db).filter(\.$user.$id == user.requireID()).delete()
        }
    }
}
