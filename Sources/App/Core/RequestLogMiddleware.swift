import Vapor

/// One log line per request — method, path (never the query, which may carry codes or tokens),
/// route, status, duration and client — tagged with the user once signed in (set by
/// ``AccessTokenMiddleware``) and with the request id, which is also sent back as
/// `X-Request-ID`; and the request counted in the metrics by route and status. Being outermost,
/// it also settles who the client is (``Request/clientIP``) for every layer inside.
struct RequestLogMiddleware: AsyncMiddleware {
    let metrics: AppMetrics
    let addresses: ClientAddressResolver

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let start = ContinuousClock.now
        request.clientIP = addresses.clientIP(of: request)
        // A client's X-Request-ID is kept only when it is a plain token: it goes into logs and back
        // into a response header.
        let requestID = Self.isPlainToken(request.id) ? request.id : UUID().uuidString
        request.logger[metadataKey: "request-id"] = .string(requestID)
        let response: Response
        do {
            response = try await next.respond(to: request)
        } catch {
            record(request, status: .internalServerError, elapsed: start.duration(to: .now))
            throw error
        }
        response.headers.replaceOrAdd(name: "X-Request-ID", value: requestID)
        record(request, status: response.status, elapsed: start.duration(to: .now))
        return response
    }

    private func record(_ request: Request, status: HTTPResponseStatus, elapsed: Duration) {
        let route = Self.routeLabel(request)
        metrics.request(method: request.method.rawValue, route: route, status: status.code, duration: elapsed)
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        request.logger.info("\(request.method.rawValue) \(request.path) \(status.code)", metadata: [
            "method": .string(request.method.rawValue),
            "path": .string(request.path),
            "route": .string(route),
            "status": .stringConvertible(status.code),
            "duration_ms": .string(String(format: "%.2f", milliseconds)),
            "client": .string(request.clientIP),
        ])
    }

    /// 1 to 128 letters, digits, `.`, `_`, `:` or `-`.
    static func isPlainToken(_ value: String) -> Bool {
        (1...128).contains(value.utf8.count) && value.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || ".-_:".utf8.contains(byte)
        }
    }

    /// The route's pattern (`/api/chat/:chatID/send`), so that metrics do not grow a series per id.
    static func routeLabel(_ request: Request) -> String {
        guard let route = request.route else { return "unmatched" }
        return "/" + route.path.map(\.description).joined(separator: "/")
    }
}
