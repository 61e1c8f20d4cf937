import Fluent

/// The accounts feature (users, passwords, tokens): what it adds to the database.
enum Accounts {
    static let migrations: [any Migration] = [
        CreateUsers(), CreateRefreshTokens(), CreateGoogleAccounts(), AddAccountProofColumns(), CreateGoogleSignInCodes(), CreateLoginClients(),
    ]
}
