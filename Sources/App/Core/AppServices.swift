import Vapor

/// What the outside world provides, injected so tests can substitute it.
public struct AppDependencies: Sendable {
    public var clock: any WallClock

    public init(clock: any WallClock = SystemClock()) {
        self.clock = clock
    }
}

/// The services built once at start-up and handed to controllers and commands.
struct AppServices: Sendable {
    let settings: Settings
    let clock: any WallClock
    let passwords: PasswordService
    let tokens: TokenSigner
    let sessions: SessionIssuer
    let accounts: AccountService

    static func make(_ app: Application, settings: Settings, dependencies: AppDependencies) async throws -> AppServices {
        let clock = dependencies.clock
        let passwords = try await PasswordService(cost: settings.bcryptCost, threadPool: app.threadPool)
        let tokens = await TokenSigner(secretKey: settings.secretKey, clock: clock,
                                       accessLifetime: settings.accessTokenLifetime,
                                       refreshLifetime: settings.refreshTokenLifetime)
        let sessions = SessionIssuer(signer: tokens, clock: clock)
        return AppServices(
            settings: settings, clock: clock, passwords: passwords, tokens: tokens, sessions: sessions,
            accounts: AccountService(passwords: passwords, sessions: sessions, clock: clock)
        )
    }
}
