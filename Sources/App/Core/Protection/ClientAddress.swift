import Foundation
import Vapor

/// An IP address or CIDR range (`10.0.0.0/8`, `::1`, `fd00::/8`).
public struct IPRange: Sendable, Equatable {
    let address: [UInt8]
    let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let address = Self.bytes(of: first) else { return nil }
        let maxLength = address.count * 8
        let length = parts.count == 2 ? Int(parts[1]) : maxLength
        guard let length, (0...maxLength).contains(length) else { return nil }
        self.address = address
        prefixLength = length
    }

    public func contains(_ text: String) -> Bool {
        guard let other = Self.bytes(of: text), other.count == address.count else { return false }
        var bits = prefixLength
        for (mine, theirs) in zip(address, other) where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if mine & mask != theirs & mask { return false }
            bits -= 8
        }
        return true
    }

    /// The client an address stands for when limiting: an IPv4 address as it is, an IPv6 address by
    /// its /64 network (one subscriber line or host usually holds a whole /64, so single addresses
    /// are free to change); anything unparsable as given.
    static func clientKey(of address: String) -> String {
        guard let bytes = bytes(of: address) else { return address }
        guard bytes.count == 16 else { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":") + "::/64"
    }

    /// The network an address belongs to, for when a limiter has no room left for single clients:
    /// an IPv4 address's /24, an IPv6 address's /48 (a site's allocation); anything unparsable as given.
    static func networkKey(of address: String) -> String {
        guard let bytes = bytes(of: address) else { return address }
        guard bytes.count == 16 else { return bytes.prefix(3).map(String.init).joined(separator: ".") + ".0/24" }
        return stride(from: 0, to: 6, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":") + "::/48"
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 address; IPv4-mapped IPv6 addresses count as IPv4.
    static func bytes(of text: String) -> [UInt8]? {
        var text = text.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: v4.s_addr) { Array($0) }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        if bytes.prefix(10).allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return Array(bytes.suffix(4)) }
        return bytes
    }
}

/// Who is on the other end of a request: the socket's peer, or — when that peer is a trusted
/// proxy — the client it reports in `X-Forwarded-For` (the nearest address not itself a trusted proxy).
struct ClientAddressResolver: Sendable {
    let trustedProxies: [IPRange]

    func clientIP(of request: Request) -> String {
        let peer = request.remoteAddress?.ipAddress ?? "unknown"
        guard isTrusted(peer) else { return peer }
        let forwarded = request.headers[.xForwardedFor]
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        for address in forwarded.reversed() where !isTrusted(address) {
            return IPRange.bytes(of: address) == nil ? peer : address
        }
        return forwarded.first ?? peer
    }

    /// Whether the request reached the proxy over HTTPS, as a trusted proxy reports it.
    func isSecure(_ request: Request) -> Bool {
        guard let peer = request.remoteAddress?.ipAddress, isTrusted(peer) else { return false }
        return request.headers.first(name: "X-Forwarded-Proto")?.lowercased() == "https"
    }

    private func isTrusted(_ address: String) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }
}

extension Request {
    private struct ClientIPKey: StorageKey {
        typealias Value = String
    }

    /// The client's address, as ``RequestLogMiddleware`` resolved it (the peer's until then).
    var clientIP: String {
        get { storage[ClientIPKey.self] ?? remoteAddress?.ipAddress ?? "unknown" }
        set { storage[ClientIPKey.self] = newValue }
    }

    /// The client as rate limits count it: its IPv4 address, or its IPv6 /64.
    var clientKey: String { IPRange.clientKey(of: clientIP) }

    /// The client's network (IPv4 /24, IPv6 /48): what a full in-process limiter counts instead.
    var clientNetwork: String { IPRange.networkKey(of: clientIP) }
}
