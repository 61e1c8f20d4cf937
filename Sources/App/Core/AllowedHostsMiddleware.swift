import Vapor

/// Refuses requests whose `Host` is not in `ALLOWED_HOSTS` (400), as Django does outside DEBUG.
/// `*` allows any host; `.example.com` allows example.com and its subdomains.
struct AllowedHostsMiddleware: AsyncMiddleware {
    let patterns: [String]

    init(allowedHosts: [String]) {
        patterns = allowedHosts.map { $0.lowercased() }
    }

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let host = Self.hostName(request.headers.first(name: .host) ?? "")
        guard isAllowed(host) else { throw RequestError.hostNotAllowed(host) }
        return try await next.respond(to: request)
    }

    func isAllowed(_ host: String) -> Bool {
        guard !host.isEmpty else { return false }
        return patterns.contains { pattern in
            if pattern == "*" { return true }
            if pattern.hasPrefix(".") { return host == pattern.dropFirst() || host.hasSuffix(pattern) }
            return host == pattern
        }
    }

    /// The host part of a `Host` header value, lowercased, without its port.
    static func hostName(_ header: String) -> String {
        let value = header.lowercased()
        if value.hasPrefix("["), let close = value.firstIndex(of: "]") {
            return String(value[...close])
        }
        return String(value.split(separator: ":", maxSplits: 1).first ?? "")
    }
}
