import Fluent
import Foundation

/// What people do to their own account: rename it, change its password, sign out everywhere,
/// delete it.
extension AccountService {
    /// Why a change to one's own account was refused (400, the field's problem).
    struct SelfServiceRefused: Error {
        var field: String
        var problems: [String]
    }

    /// Sets the display name.
    func rename(_ user: User, to name: String, on db: any Database) async throws {
        try await changing(on: db) { tx, changes in
            user.name = name
            try await user.save(on: tx)
            changes.add(try user.requireID())
        }
    }

    /// Checks `current`, sets `new` and signs out every session of the account — refresh tokens,
    /// access tokens, admin sessions, open streams, the caller's own included — then starts the
    /// one session that lives, in the same transaction. An account without a password (it signs in
    /// through a provider) has none to change.
    func changePassword(of user: User, current: String, new: String, on db: any Database) async throws -> TokenPair {
        guard user.passwordHash != nil else {
            throw SelfServiceRefused(field: "current_password", problems: ["This account has no password: it signs in through its provider."])
        }
        guard try await passwords.verify(current, against: user.passwordHash) else {
            throw SelfServiceRefused(field: "current_password", problems: ["The current password is wrong."])
        }
        let problems = PasswordService.problems(with: new, email: user.email)
        guard problems.isEmpty else { throw SelfServiceRefused(field: "new_password", problems: problems) }
        let hash = try await passwords.hash(new)
        return try await changing(on: db) { tx, changes in
            // Nobody signed the account out (or changed the password) while the password was checked.
            try await sessions.lockUnchanged(user, on: tx)
            user.passwordHash = hash
            try await user.save(on: tx)
            try await signOutEverywhere(user, on: tx, changes: changes)
            return try await sessions.start(for: user, on: tx)
        }
    }

    /// How recent a sign-in must be for an account without a password to delete itself.
    static let reauthenticationWindow: TimeInterval = 5 * 60

    /// Whether the caller proved just now that they hold the account: its password, or — for an
    /// account without one — an access token issued within the last five minutes by a session
    /// that signed in within them (a token refreshed from an old session is recent; the session's
    /// sign-in is not, and neither is the owner's sign-in elsewhere).
    func confirmOwnership(of user: User, password: String?, accessTokenID: String?, tokenIssuedAt: Date?,
                          on db: any Database) async throws {
        if user.passwordHash != nil {
            guard let password, !password.isEmpty else {
                throw SelfServiceRefused(field: "password", problems: ["This field is required."])
            }
            guard try await passwords.verify(password, against: user.passwordHash) else {
                throw SelfServiceRefused(field: "password", problems: ["The password is wrong."])
            }
            return
        }
        let since = clock.now().addingTimeInterval(-Self.reauthenticationWindow)
        guard let issued = tokenIssuedAt, issued >= since, let jti = accessTokenID,
              let signedIn = try await sessions.signedInAt(ofAccessToken: jti, on: db), signedIn >= since else {
            throw AccountsError.reauthenticationRequired
        }
    }
}
