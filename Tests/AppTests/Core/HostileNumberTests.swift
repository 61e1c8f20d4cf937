@testable import App
import Foundation
import Testing
import VaporTesting

/// Numbers a client sends — inside cursors, query values, event ids — are range-checked where they
/// are parsed: anything this server did not issue is a 400, and nothing reaches a conversion that
/// traps (PostgreSQL's driver stops the process on a time it cannot represent).
@Suite("Hostile numbers")
struct HostileNumberTests {
    /// The base64url form a cursor travels in.
    static func cursor(_ text: String) -> String { cursor(Data(text.utf8)) }

    static func cursor(_ bytes: Data) -> String {
        bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Cursors that decode to something, but not to a cursor this server can have issued.
    static let hostileCursors: [String] = {
        let id = "00000000-0000-0000-0000-000000000000"
        let texts = [
            "1e300|\(id)", "-1e300|\(id)", "1e18|\(id)", "-1e18|\(id)", "9.3e12|\(id)", "252423993600|\(id)", "-63113904001|\(id)",
            "nan|\(id)", "NaN|\(id)", "inf|\(id)", "-infinity|\(id)", "0x1p1023|\(id)", "|\(id)", "0|", "0||\(id)", "0|\(id)|",
            "0|not-a-uuid", "0|00000000000000000000000000000000", "0|{00000000-0000-0000-0000-000000000000}", "0 |\(id)",
            "1.5|\(id.uppercased())x", "0|\(id)\u{0}", String(repeating: "9", count: 400) + "|\(id)",
        ]
        var cursors = texts.map { cursor("chats|" + $0) } + texts.map { cursor($0) }
        cursors.append(cursor(Data("chats|".utf8) + Data([0xFF, 0xFE, 0x7C, 0x30]) + Data(id.utf8)))
        cursors.append(cursor("search|0"))
        cursors += ["!!!!", "====", "a", String(repeating: "A", count: 10_000), "%00", "€"]
        return cursors
    }()

    @Test("a chat list cursor the server did not issue is 400 (fuzzed: huge, negative, NaN, infinity, non-UTF-8, bad ids), and the server lives on",
          arguments: TestDatabase.all)
    func chatListCursors(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            _ = try await t.createChat(token: session.access, title: "Mine")
            var generator = SystemRandomNumberGenerator()
            var cursors = Self.hostileCursors
            for _ in 0..<200 {
                let length = Int.random(in: 1...60, using: &generator)
                let bytes = Data((0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) })
                cursors.append(Self.cursor(bytes))
            }
            for _ in 0..<100 {
                // Random numbers in the cursor's own shape, in and far out of range.
                let seconds = Double.random(in: -1e20...1e20, using: &generator) * pow(10, Double.random(in: 0...280, using: &generator))
                cursors.append(Self.cursor("chats|\(seconds)|\(UUID().uuidString.lowercased())"))
            }
            for cursor in cursors {
                let encoded = cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor
                let response = try await t.send(.GET, "/api/chat/?cursor=\(encoded)", token: session.access)
                let seconds = Self.secondsIn(cursor)
                if let seconds, ChatCursor.validSeconds.contains(seconds) {
                    #expect(response.status == .ok, "a cursor in range (\(seconds)) is a position")
                } else {
                    #expect(response.status == .badRequest, "cursor \(cursor.prefix(60)) answered \(response.status)")
                    #expect(try response.problem().errors?["cursor"] != nil)
                }
            }
            #expect(try await t.send(.GET, "/healthz").status == .ok)
            #expect(try await t.send(.GET, "/api/chat/", token: session.access).status == .ok, "the database connection still answers")

            // The far ends of the range are positions too: the first and last stored times.
            for seconds in [ChatCursor.validSeconds.lowerBound, ChatCursor.validSeconds.upperBound] {
                let edge = Self.cursor("chats|\(seconds)|\(UUID().uuidString.lowercased())")
                let response = try await t.send(.GET, "/api/chat/?cursor=\(edge)", token: session.access)
                #expect(response.status == .ok)
            }
        }
    }

    /// The time a well-formed cursor holds, when it is one (the cursor format, re-read here).
    static func secondsIn(_ cursor: String) -> Double? {
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard cursor.utf8.count <= 128, let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "chats", UUID(hyphenated: String(parts[2])) != nil else { return nil }
        return Double(parts[1])
    }

    @Test("event ids, limits and search cursors out of range are 400, never a crash", arguments: TestDatabase.all)
    func otherNumbers(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Numbers")
            for limit in ["0", "-1", "101", "9223372036854775808", "1e3", "nan", "١"] {
                #expect(try await t.send(.GET, "/api/chat/?limit=\(limit)", token: session.access).status == .badRequest, "limit \(limit)")
            }
            for id in ["r9223372036854775808.1", "r0.1", "-1", "1--1", "1-9223372036854775808", "r1.", "9223372036854775808"] {
                let response = try await t.send(.GET, "/api/chat/\(chat.id)/messages/", token: session.access, headers: ["Last-Event-ID": id])
                #expect(response.status == .badRequest, "Last-Event-ID \(id)")
            }
            for cursor in ["search|-1", "search|99999999999999999999", "search|1e300", "search|100001", "chats|0"].map(Self.cursor) {
                #expect(try await t.send(.GET, "/api/search/?q=x&cursor=\(cursor)", token: session.access).status == .badRequest)
            }
            #expect(try await t.send(.GET, "/healthz").status == .ok)
        }
    }
}
