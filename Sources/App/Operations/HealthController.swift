import SQLKit
import Vapor

/// `/healthz` (the process answers) and `/readyz` (and its database does), for load balancers.
struct HealthController: RouteCollection {
    /// True while the server stops: it is alive but should get no new traffic.
    let isDraining: @Sendable () -> Bool

    struct Status: Content {
        var status: String
        var database: String?
    }

    func boot(routes: any RoutesBuilder) throws {
        routes.get("healthz", use: live)
        routes.get("readyz", use: ready)
    }

    func live(req: Request) -> Status {
        Status(status: "ok")
    }

    func ready(req: Request) async throws -> Status {
        guard !isDraining() else {
            throw HTTPProblem(.serviceUnavailable, title: "Not ready", detail: "The server is shutting down.")
        }
        do {
            try await req.db.sql().raw("SELECT 1").run()
        } catch {
            req.logger.warning("readiness check failed", metadata: ["error": "\(error)"])
            throw HTTPProblem(.serviceUnavailable, title: "Not ready", detail: "The database cannot be reached.")
        }
        return Status(status: "ok", database: "ok")
    }
}
