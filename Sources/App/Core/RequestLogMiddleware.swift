import Vapor

/// One log line per request — method, path (never the query, which may carry codes), status and
/// duration — tagged with the request id, which is also sent back as `X-Request-ID`.
struct RequestLogMiddleware: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next.respond(to: request)
        response.headers.replaceOrAdd(name: "X-Request-ID", value: request.id)
        let elapsed = start.duration(to: .now)
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        request.logger.info("\(request.method.rawValue) \(request.url.path) \(response.status.code)", metadata: [
            "status": .stringConvertible(response.status.code),
            "duration_ms": .string(String(format: "%.2f", milliseconds)),
        ])
        return response
    }
}
