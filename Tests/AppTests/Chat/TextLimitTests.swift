@testable import App
import Foundation
import Providers
import Testing
import VaporTesting

/// Every text field has a limit in characters — Unicode scalar values, as the OpenAPI document's
/// `maxLength` counts them — and in UTF-8 bytes.
@Suite("Text limits")
struct TextLimitTests {
    /// One letter with 40 combining marks: one character on screen, 41 scalars, 81 bytes.
    static let heavyGrapheme = "a" + String(repeating: "\u{0301}", count: 40)

    @Test("a title of 200 characters on screen but 8,200 scalars is refused, on create, rename and in the admin", arguments: TestDatabase.all)
    func titleCountsScalars(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let heavy = String(repeating: Self.heavyGrapheme, count: 200)
            #expect(heavy.count == 200 && heavy.unicodeScalars.count == 8_200 && heavy.utf8.count > 16_000)
            let created = try await t.send(.POST, "/api/chat/", json: ["title": heavy], token: session.access)
            #expect(created.status == .badRequest)
            #expect(try created.problem().errors?["title"] == ["Ensure this field has no more than 200 characters."])
            let chat = try await t.createChat(token: session.access, title: "Plain")
            let renamed = try await t.send(.PATCH, "/api/chat/\(chat.id)/", json: ["title": heavy], token: session.access)
            #expect(renamed.status == .badRequest)
            #expect(try await t.chat(chat.id, token: session.access)["title"] as? String == "Plain", "nothing changed")
            // 200 scalars is the limit, whatever their size in bytes.
            let emoji = String(repeating: "😀", count: 200)
            #expect(try await t.send(.PATCH, "/api/chat/\(chat.id)/", json: ["title": emoji], token: session.access).status == .ok)
            let over = String(repeating: "a", count: 198) + "\u{0301}\u{0301}\u{0301}"
            #expect(over.count == 198 && over.unicodeScalars.count == 201)
            #expect(try await t.send(.PATCH, "/api/chat/\(chat.id)/", json: ["title": over], token: session.access).status == .badRequest)
        }
    }

    @Test("the limits of content, system prompts, names and queries count scalars too", arguments: TestDatabase.all)
    func otherFields(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["CHAT_MAX_MESSAGE_LENGTH": "100", "CHAT_MAX_SYSTEM_LENGTH": "50"]) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Limits")
            let before = try await t.messageCount()
            let heavy = String(repeating: Self.heavyGrapheme, count: 3)  // 3 characters, 123 scalars
            for (method, path, body, field): (HTTPMethod, String, [String: Any], String) in [
                (.POST, "/api/chat/\(chat.id)/send/", ["content": heavy], "content"),
                (.POST, "/api/chat/", ["content": heavy], "content"),
                (.PATCH, "/api/chat/\(chat.id)/", ["system": String(repeating: Self.heavyGrapheme, count: 2)], "system"),
            ] {
                let response = try await t.send(method, path, json: body, token: session.access)
                #expect(response.status == .badRequest, "\(path)")
                #expect(try response.problem().errors?[field] != nil, "\(path)")
            }
            #expect(try await t.messageCount() == before)
            let register = try await t.send(.POST, "/auth/register/", json: ["email": uniqueEmail(), "password": testPassword,
                                                                             "name": String(repeating: Self.heavyGrapheme, count: 4)])
            #expect(register.status == .badRequest)
            #expect(try register.problem().errors?["name"] != nil)
            let query = String(repeating: Self.heavyGrapheme, count: 5).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            #expect(try await t.send(.GET, "/api/chat/?q=\(query)", token: session.access).status == .badRequest)
            #expect(try await t.send(.GET, "/api/search/?q=\(query)", token: session.access).status == .badRequest)
        }
    }

    @Test("titles made from a message or by the model are cut in scalars, whatever their marks")
    func madeTitlesAreBounded() {
        let heavyWord = String(repeating: Self.heavyGrapheme, count: 60)
        let fromMessage = ChatTitling.placeholder(from: heavyWord + " and more")
        #expect(fromMessage.unicodeScalars.count <= 60)
        #expect(fromMessage.hasSuffix("…"))
        let cleaned = ChatTitling.clean(heavyWord)
        #expect(cleaned != nil && (cleaned?.unicodeScalars.count ?? 0) <= 60)
        #expect(TextLimit(characters: 3).problem(with: "abc") == nil)
        #expect(TextLimit(characters: 3).problem(with: "ab\u{0301}c") == "Ensure this field has no more than 3 characters.")
        #expect(TextLimit(characters: 10, bytes: 4).problem(with: "ééé") == "Ensure this field has no more than 4 bytes (UTF-8).")
    }
}

