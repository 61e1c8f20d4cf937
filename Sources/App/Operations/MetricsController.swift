import Vapor

/// `GET /metrics` in the Prometheus text format: with `METRICS_TOKEN` set, for requests bearing it;
/// without, for loopback clients only (a scraper on the same host, or through an SSH tunnel), and
/// never for a request a proxy forwarded.
struct MetricsController: RouteCollection {
    let metrics: AppMetrics
    let token: String?

    func boot(routes: any RoutesBuilder) throws {
        routes.get("metrics", use: exposition)
    }

    func exposition(req: Request) throws -> Response {
        if let token {
            guard let presented = req.headers.bearerToken,
                  Secrets.constantTimeEqual(presented, token) else { throw AccountsError.missingToken }
        } else {
            // A request relayed by a proxy on this host comes from loopback too: only a direct one counts.
            let peer = req.remoteAddress?.ipAddress ?? ""
            let relayed = req.headers.contains(name: .xForwardedFor) || req.headers.contains(name: .forwarded)
            guard !relayed, peer.hasPrefix("127.") || peer == "::1" || peer.hasPrefix("::ffff:127.") else {
                throw HTTPProblem(.forbidden, detail: "Metrics are served to loopback clients only; set METRICS_TOKEN to read them remotely.")
            }
        }
        return Response(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"],
                         body: .init(buffer: ByteBuffer(bytes: metrics.exposition())))
    }
}
