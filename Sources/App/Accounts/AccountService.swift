import Fluent
import Vapor

/// A checked sign-up: what ``AccountService/register(_:on:)`` needs.
public struct Registration: Sendable {
    public var email: String
    public var password: String
    public var name: String
}

/// Signs people up and in.
public struct AccountService: Sendable {
    let passwords: PasswordService
    let sessions: SessionIssuer
    let clock: any WallClock

    /// Creates the account and signs it in; `emailTaken` when the address is in use in any case.
    public func register(_ registration: Registration, on db: any Database) async throws -> (User, TokenPair) {
        let user = try await createUser(email: registration.email, password: registration.password, name: registration.name, on: db)
        user.lastLogin = clock.now()
        try await user.save(on: db)
        return (user, try await sessions.start(for: user, on: db))
    }

    /// Checks the credentials; unknown email, wrong password and inactive account fail alike.
    public func login(email: String, password: String, on db: any Database) async throws -> (User, TokenPair) {
        let user = try await User.find(email: email, on: db)
        let matches = try await passwords.verify(password, against: user?.passwordHash)
        guard matches, let user, user.isActive else { throw AccountsError.invalidCredentials }
        user.lastLogin = clock.now()
        try await user.save(on: db)
        return (user, try await sessions.start(for: user, on: db))
    }

    /// Stores a new user with a hashed password; the one way accounts with passwords are made.
    public func createUser(
        email: String, password: String, name: String = "",
        isStaff: Bool = false, isSuperuser: Bool = false, on db: any Database
    ) async throws -> User {
        if try await User.find(email: email, on: db) != nil { throw AccountsError.emailTaken }
        let user = User(email: email, name: name, passwordHash: try await passwords.hash(password),
                        isStaff: isStaff, isSuperuser: isSuperuser)
        do {
            try await user.create(on: db)
        } catch let error as any DatabaseError where error.isConstraintFailure {
            throw AccountsError.emailTaken
        }
        return user
    }
}
