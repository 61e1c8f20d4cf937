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
    /// a well-formed name or address (so that it can be written into a header safely): ASCII
    /// letters, digits, `.`, `-`, and `[`, `]`, `:` for an IPv6 address, at most 253 of them. Read
    /// on bytes: it runs on every request.
    static func hostName(of request: Request) -> String? {
        hostName(fromHeader: request.headers.first(name: .host))
    }

    static func hostName(fromHeader header: String?) -> String? {
        let value = Array((header ?? "").utf8)
        let end: Int
        if value.first == UInt8(ascii: "["), let close = value.firstIndex(of: UInt8(ascii: "]")) {
            end = close + 1
        } else {
            end = value.firstIndex(of: UInt8(ascii: ":")) ?? value.count
        }
        guard end > 0, end <= 253 else { return nil }
        var name: [UInt8] = []
        name.reserveCapacity(end)
        for byte in value[..<end] {
            let lower = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
            guard allowedBytes.contains(lower) else { return nil }
            name.append(lower)
        }
        return String(decoding: name, as: UTF8.self)
    }

    private static let allowedBytes = Set("abcdefghijklmnopqrstuvwxyz0123456789.-[]:".utf8)
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
