@testable import App
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing
import VaporTesting

@Suite("Logs")
struct LogTests {
    /// Lines a ``JSONLogHandler`` wrote, kept in memory.
    final class CapturedLines: Sendable {
        private let lines = NIOLockedValueBox<[String]>([])
        var all: [String] { lines.withLockedValue { $0 } }
        var write: @Sendable (String) -> Void { { [lines] line in lines.withLockedValue { $0.append(line) } } }

        func objects() -> [[String: Any]] {
            all.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }

    @Test("each request is one JSON line with its id, user, route, status and duration; no password or token in any line")
    func jsonRequestLines() async throws {
        try await withTestApp(.sqlite) { t in
            let captured = CapturedLines()
            t.app.logger = Logger(label: "chat-server") { label in JSONLogHandler(label: label, level: .info, write: captured.write) }

            let session = try await t.register(email: "logged@example.com")
            _ = try await t.send(.POST, "/auth/refresh/", json: ["refresh": session.refresh])
            _ = try await t.send(.GET, "/api/chat/", token: session.access, headers: ["X-Request-ID": "trace-42"])

            let lines = captured.objects()
            #expect(lines.count == captured.all.count, "every line is a JSON object")
            let listing = try #require(lines.first { $0["route"] as? String == "/api/chat" })
            #expect(listing["request-id"] as? String == "trace-42")
            #expect(listing["user"] as? String == session.user.id)
            #expect(listing["status"] as? String == "200")
            #expect(listing["method"] as? String == "GET")
            #expect(Double(listing["duration_ms"] as? String ?? "") != nil)
            #expect(listing["level"] as? String == "info")
            #expect(listing["time"] is String)

            let register = try #require(lines.first { $0["route"] as? String == "/auth/register" })
            #expect(register["status"] as? String == "201")
            for line in captured.all {
                #expect(!line.contains(testPassword))
                #expect(!line.contains(session.access))
                #expect(!line.contains(session.refresh))
            }
        }
    }

    @Test("a client's X-Request-ID is echoed and logged only when it is a plain token")
    func requestIDs() async throws {
        try await withTestApp(.sqlite) { t in
            let plain = try await t.send(.GET, "/auth/providers/", headers: ["X-Request-ID": "trace-42.a_b:c"])
            #expect(plain.headers.first(name: "X-Request-ID") == "trace-42.a_b:c")
            for hostile in ["two words", "<script>", String(repeating: "x", count: 200), "a\"b"] {
                let response = try await t.send(.GET, "/auth/providers/", headers: ["X-Request-ID": hostile])
                let echoed = try #require(response.headers.first(name: "X-Request-ID"))
                #expect(echoed != hostile)
                #expect(UUID(uuidString: echoed) != nil, "a fresh id instead")
            }
        }
    }
}
