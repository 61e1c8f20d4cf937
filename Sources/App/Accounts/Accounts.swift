import Fluent

/// The accounts feature (users, passwords, tokens, sessions): what it adds to the database.
enum Accounts {
    static let migrations: [any Migration] = [
        CreateUsers(), CreateRefreshTokens(), CreateGoogleAccounts(), AddAccountProofColumns(), CreateGoogleSignInCodes(), CreateLoginClients(),
        CreateAdminSessions(), CreateAPIKeys(), GeneralizeSignIn(), AddRefreshTokenSignIn(),
    ]
}
