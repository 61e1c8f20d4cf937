import Vapor

/// The whole URL map. Trailing slashes are optional on every route (Vapor ignores empty path segments).
func routes(_ app: Application, _ services: AppServices) throws {
    let requireUser = AccessTokenMiddleware(signer: services.tokens)

    try app.register(collection: HealthController())
    try app.register(collection: APISchemaController.load(resourcesDirectory: app.directory.resourcesDirectory))
    try app.register(collection: AuthController(accounts: services.accounts, sessions: services.sessions, requireUser: requireUser))
}
