import Vapor

/// The host names this server answers to (`ALLOWED_HOSTS`), as Django checks them outside DEBUG.
/// `*` allows any host; `.example.com` allows example.com and its subdomains.
struct AllowedHosts: Sendable {
    let patterns: [String]

    init(_ allowedHosts: [String]) {
        patterns = allowedHosts.map { $0.lowercased() }
    }

    func isAllowed(_ host: String) -> Bool {
        guard !host.isEmpty else { return false }
        return patterns.contains { pattern in
            if pattern == "*" { return true }
            if pattern.hasPrefix(".") { return host == pattern.dropFirst() || host.hasSuffix(pattern) }
            return host == pattern
        }
    }

    /// The host name a request names in `Host`, lowercased and without its port; nil when it is not
    /// a well-formed name or address (so that it can be written into a header safely).
    static func hostName(of request: Request) -> String? {
        let value = (request.headers.first(name: .host) ?? "").lowercased()
        let name: Substring
        if value.hasPrefix("["), let close = value.firstIndex(of: "]") {
            name = value[...close]
        } else {
            name = value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-[]:")
        guard !name.isEmpty, name.count <= 253, name.allSatisfy(allowed.contains) else { return nil }
        return String(name)
    }
}

/// Refuses requests whose `Host` is not in `ALLOWED_HOSTS` (400).
struct AllowedHostsMiddleware: AsyncMiddleware {
    let hosts: AllowedHosts

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard let host = AllowedHosts.hostName(of: request), hosts.isAllowed(host) else {
            throw RequestError.hostNotAllowed(AllowedHosts.hostName(of: request) ?? "(malformed)")
        }
        return try await next.respond(to: request)
    }
}
