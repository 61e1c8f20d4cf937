import AsyncHTTPClient
import Foundation

extension MCPClient {
    /// Runs `work`, cancelled — closing its HTTP request — if it takes longer than `timeout`.
    static func within<T: Sendable>(_ timeout: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                try Task.checkCancellation()
                throw MCPError("no answer within \(spoken(timeout))")
            }
            return value
        }
    }

    /// `text` cut to at most `bytes` UTF-8 bytes, at a character boundary.
    public static func cut(_ text: String, toBytes bytes: Int) -> String {
        let utf8 = text.utf8
        guard utf8.count > bytes else { return text }
        var end = utf8.index(utf8.startIndex, offsetBy: max(0, bytes))
        while end > utf8.startIndex, utf8[end] & 0xC0 == 0x80 { end = utf8.index(before: end) }
        return String(utf8[..<end]) ?? ""
    }

    /// `duration` as a person says it: `30 s`, `1500 ms`.
    static func spoken(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "the connection timed out"
            case .remoteConnectionClosed: return "the connection was closed"
            default: break
            }
        }
        // Classified, never the error's own text (which may name hosts and addresses to whoever reads a tool result).
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "the connection was refused" }
        if text.localizedCaseInsensitiveContains("timeout") || text.localizedCaseInsensitiveContains("timed out") { return "the connection timed out" }
        if text.localizedCaseInsensitiveContains("tls") || text.localizedCaseInsensitiveContains("ssl") { return "the secure connection failed" }
        if text.localizedCaseInsensitiveContains("resolve") || text.localizedCaseInsensitiveContains("lookup") { return "the host name could not be resolved" }
        return "the connection failed"
    }
}
