import Fluent
import NIOConcurrencyHelpers
import Vapor

/// A checked sign-up: what ``AccountService/register(_:on:)`` needs.
public struct Registration: Sendable {
    public var email: String
    public var password: String
    public var name: String
}

/// Something a client must tell the person signing in about their account.
public enum AccountNotice: String, Codable, Sendable {
    /// Google proved the account's email for the first time, and the password that someone had set
    /// without proving it was removed; every other session of the account was signed out.
    case passwordRemoved = "password_removed"
}

/// Signs people up and in.
public struct AccountService: Sendable {
    let passwords: PasswordService
    let sessions: SessionIssuer
    let clock: any WallClock

    /// The accounts requests keep in memory: whatever changes one here says so.
    var users: SignedInUsers { sessions.users }

    /// Creates the account and signs it in; `emailTaken` when the address is in use in any case.
    public func register(_ registration: Registration, on db: any Database) async throws -> (User, TokenPair) {
        let user = try await createUser(email: registration.email, password: registration.password, name: registration.name, on: db)
        user.lastLogin = clock.now()
        try await user.save(on: db)
        return (user, try await sessions.start(for: user, on: db))
    }

    /// Checks the credentials and signs the user in with tokens — unless the account was signed out
    /// everywhere while its password was being checked (``SessionIssuer/startAfterPasswordCheck(for:on:)``).
    public func login(email: String, password: String, on db: any Database) async throws -> (User, TokenPair) {
        let user = try await authenticate(email: email, password: password, on: db)
        return (user, try await sessions.startAfterPasswordCheck(for: user, on: db))
    }

    /// Checks the credentials and records the sign-in; unknown email, wrong password and inactive
    /// account fail alike (`invalidCredentials`), in about the same time (a hash is always checked).
    public func authenticate(email: String, password: String, on db: any Database) async throws -> User {
        let user = try await User.find(email: email, on: db)
        let matches = try await passwords.verify(password, against: user?.passwordHash)
        guard matches, let user, user.isActive else { throw AccountsError.invalidCredentials }
        user.lastLogin = clock.now()
        try await user.save(on: db)
        return user
    }

    /// Sets a new password (checked like a sign-up's) and signs the user out everywhere — but for
    /// the admin session `keeping`, when staff set their own password there. Returns the password's
    /// problems instead when it is refused.
    func resetPassword(of user: User, to password: String, keeping adminSession: AdminSession? = nil,
                              on db: any Database) async throws -> [String] {
        let problems = PasswordService.problems(with: password, email: user.email)
        guard problems.isEmpty else { return problems }
        let hash = try await passwords.hash(password)
        try await changing(on: db) { tx, changes in
            user.passwordHash = hash
            try await user.save(on: tx)
            try await signOutEverywhere(user, keeping: adminSession, on: tx, changes: changes)
        }
        return []
    }

    /// Runs `body` in a transaction and, once it has committed, announces every account it changed
    /// (``SignedInUsers/changed(_:)``: forgotten here, and on every other instance). Announcing
    /// inside the transaction would let a request in between read the old row again and keep it.
    func changing<T: Sendable>(on db: any Database,
                               _ body: @escaping @Sendable (any Database, AccountChanges) async throws -> T) async throws -> T {
        let changes = AccountChanges()
        let result = try await db.transaction { tx in try await body(tx, changes) }
        changes.ids.forEach(users.changed)
        return result
    }

    /// What staff may change about a user in the admin.
    struct AccountChange {
        var name: String
        var role: UserRole?
        var isStaff: Bool
        var isActive: Bool
        /// Ignored unless the one changing it is a superuser.
        var isSuperuser: Bool
        /// Tokens a day: nil for the server's quota, -1 for no limit (``User/dailyTokenQuota``).
        var dailyTokenQuota: Int64?
    }

    /// Why an admin's change to a user was refused: each problem, in words for the page.
    struct AccountChangeRefused: Error {
        var problems: [String]
    }

    /// Applies `change` to `user`, made by `admin`: a name of at most 150 characters and a role
    /// are required; only a superuser changes superuser status; nobody takes away their own staff,
    /// active or superuser status. Saves it; a deactivated user is signed out everywhere, one who
    /// lost staff status out of the admin. Answers what changed, for the log.
    func update(_ user: User, with change: AccountChange, by admin: User, on db: any Database) async throws -> [String] {
        let isSuperuser = admin.isSuperuser ? change.isSuperuser : user.isSuperuser
        var problems: [String] = []
        if TextLimit.name.problem(with: change.name) != nil { problems.append("The name may have at most 150 characters.") }
        if change.role == nil { problems.append("Choose a role.") }
        if user.id == admin.id, !change.isStaff || !change.isActive || (admin.isSuperuser && !isSuperuser) {
            problems.append("You cannot take away your own staff, active or superuser status.")
        }
        guard problems.isEmpty, let role = change.role else { throw AccountChangeRefused(problems: problems) }

        var changes: [String] = []
        func note<T: Equatable & CustomStringConvertible>(_ label: String, _ old: T, _ new: T) {
            if old != new { changes.append("\(label): \(old) → \(new)") }
        }
        note("name", user.name, change.name)
        note("role", user.role.rawValue, role.rawValue)
        note("is_staff", user.isStaff, change.isStaff)
        note("is_active", user.isActive, change.isActive)
        note("is_superuser", user.isSuperuser, isSuperuser)
        note("daily_token_quota", user.dailyTokenQuota.map(String.init) ?? "default", change.dailyTokenQuota.map(String.init) ?? "default")
        user.dailyTokenQuota = change.dailyTokenQuota
        let deactivated = user.isActive && !change.isActive
        let lostStaff = user.isStaff && !change.isStaff
        (user.name, user.role, user.isStaff, user.isActive, user.isSuperuser) = (change.name, role, change.isStaff, change.isActive, isSuperuser)
        try await changing(on: db) { tx, announced in
            try await user.save(on: tx)
            announced.add(try user.requireID())
            if deactivated {
                try await signOutEverywhere(user, on: tx, changes: announced)
            } else if lostStaff {
                try await AdminSession.query(on: tx).filter(\.$user.$id == user.requireID()).delete()
            }
        }
        return changes
    }

    /// Removes the password (the account signs in through Google from now on) and signs the user
    /// out everywhere, inside the caller's transaction (``changing(on:_:)``).
    func removePassword(of user: User, on db: any Database, changes: AccountChanges) async throws {
        user.passwordHash = nil
        try await user.save(on: db)
        try await signOutEverywhere(user, on: db, changes: changes)
    }

    /// Revokes every refresh token of the user and ends their admin sessions (but `keeping`), inside
    /// the caller's transaction; `changes` announces it once that commits. Access tokens already
    /// issued stop working then too: requests check the account (``AccessTokenMiddleware``).
    func signOutEverywhere(_ user: User, keeping adminSession: AdminSession? = nil, on db: any Database,
                           changes: AccountChanges) async throws {
        let userID = try user.requireID()
        user.sessionsRevokedAt = try await sessions.revokeAll(of: userID, on: db)
        let sessions = AdminSession.query(on: db).filter(\.$user.$id == userID)
        if let kept = adminSession?.id { sessions.filter(\.$id != kept) }
        try await sessions.delete()
        changes.add(userID)
    }

    /// Signs the user out everywhere, on its own.
    func signOutEverywhere(_ user: User, on db: any Database) async throws {
        try await changing(on: db) { tx, changes in try await signOutEverywhere(user, on: tx, changes: changes) }
    }

    /// Stores a new user with a hashed password; the one way accounts with passwords are made.
    /// `emailVerified` when the operator vouches for the address (`createsuperuser`); a sign-up does not.
    public func createUser(
        email: String, password: String, name: String = "",
        isStaff: Bool = false, isSuperuser: Bool = false, emailVerified: Bool = false, on db: any Database
    ) async throws -> User {
        if try await User.find(email: email, on: db) != nil { throw AccountsError.emailTaken }
        let user = User(email: email, name: name, passwordHash: try await passwords.hash(password),
                        isStaff: isStaff, isSuperuser: isSuperuser)
        if emailVerified { user.emailVerifiedAt = clock.now() }
        do {
            try await user.create(on: db)
        } catch let error as any DatabaseError where error.isConstraintFailure {
            throw AccountsError.emailTaken
        }
        return user
    }
}

/// The accounts a transaction changed, to announce once it has committed (``AccountService/changing(on:_:)``).
final class AccountChanges: Sendable {
    private let changed = NIOLockedValueBox<[UUID]>([])

    func add(_ id: UUID) {
        changed.withLockedValue { if !$0.contains(id) { $0.append(id) } }
    }

    var ids: [UUID] { changed.withLockedValue { $0 } }
}
