@testable import App
import Foundation
import SQLKit
import Testing
import VaporTesting

@Suite("Chats")
struct ChatCRUDTests {
    @Test("a chat created without content has no messages, a default title and the default model", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func createEmpty(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            #expect(chat["title"] as? String == "New chat")
            #expect(chat["model"] as? String == api.defaultModel)
            #expect(chat["system"] == nil || chat["system"] is NSNull)
            #expect(chat.messages.isEmpty)
            #expect(UUID(uuidString: chat.id) != nil && chat.id == chat.id.lowercased())
            #expect(t.emulator?.requests.isEmpty == true)
        }
    }

    @Test("a chat created with content stores it, titles itself from it and starts the reply", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func createWithContent(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Hello!\nSecond line", system: "Be kind.")

            #expect(chat["title"] as? String == "Hello!")
            #expect(chat["system"] as? String == "Be kind.")
            let messages = chat.messages
            #expect(messages.map { $0["role"] as? String } == ["user", "assistant"])
            #expect(messages[0]["content"] as? String == "Hello!\nSecond line")
            #expect(messages[0]["status"] as? String == "complete")
            #expect(messages[1]["status"] as? String == "streaming")
            #expect(messages[1]["content"] as? String == "")

            let reply = try await t.waitForReply(messages[1].id, chat: chat.id, token: session.access)
            #expect(reply["status"] as? String == "complete")
            #expect(reply["content"] as? String == "Echo: Hello!\nSecond line")
            #expect(reply["input_tokens"] as? Int == 21)
            #expect(reply["output_tokens"] as? Int == 3)
            #expect(reply["stop_reason"] as? String == "end_turn")
        }
    }

    @Test("create refuses bad input and stores nothing", arguments: TestDatabase.all)
    func createValidation(_ database: TestDatabase) async throws {
        let cases: [([String: Any], String)] = [
            (["model": "gpt-4"], "model"),
            (["content": ""], "content"),
            (["content": "   "], "content"),
            (["content": String(repeating: "x", count: 32_001)], "content"),
            (["title": ""], "title"),
            (["title": String(repeating: "t", count: 201)], "title"),
            (["content": 5], "content"),
            (["system": ["not", "text"]], "system"),
        ]
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            for (json, field) in cases {
                let response = try await t.send(.POST, "/api/chat/", json: json, token: session.access)
                #expect(response.status == .badRequest, "\(json)")
                #expect(try response.problem().errors?[field] != nil, "\(json)")
            }
            #expect(try await Chat.query(on: t.db).count() == 0)
            #expect(try await t.messageCount() == 0)
        }
    }

    @Test("the list is the caller's chats, newest activity first, in pages linked by cursor", arguments: TestDatabase.all)
    func listPages(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            let other = try await t.register()
            _ = try await t.createChat(token: other.access, title: "Not yours")
            var created: [String] = []
            for number in 1...5 {
                created.append(try await t.createChat(token: session.access, title: "Chat \(number)").id)
                if number != 3 { t.clock.advance(by: 1.5) }  // chats 3 and 4 share a time: the id breaks the tie
            }
            // activity moves chat 2 to the top
            let turn = try await t.sendMessage("bump", chat: created[1], token: session.access)
            try await t.waitForReply(turn.assistant.id, chat: created[1], token: session.access)
            let tied = [created[2], created[3]].sorted(by: >)

            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let path = "/api/chat/?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await t.send(.GET, path, token: session.access).jsonObject()
                let results = try #require(page["results"] as? [[String: Any]])
                #expect(results.count <= 2)
                #expect(results.allSatisfy { $0["messages"] == nil && $0.keys.contains("last_message_at") })
                seen += results.map(\.id)
                cursor = page["next"] as? String
                #expect(page.keys.contains("next"), "next is present, null on the last page, as the contract says")
                pages += 1
            } while cursor != nil && pages < 10

            #expect(pages == 3)
            #expect(seen == [created[1], created[4]] + tied + [created[0]])
        }
    }

    @Test("q filters by title, ignoring case and treating % and _ as text", arguments: TestDatabase.all)
    func search(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            for title in ["Swift concurrency", "Cooking pasta", "SWIFT packages", "100% done", "1000 done"] {
                _ = try await t.createChat(token: session.access, title: title)
            }
            func titles(_ q: String) async throws -> Set<String> {
                let encoded = q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q
                let page = try await t.send(.GET, "/api/chat/?q=\(encoded)", token: session.access).jsonObject()
                return Set((page["results"] as? [[String: Any]] ?? []).compactMap { $0["title"] as? String })
            }
            #expect(try await titles("swift") == ["Swift concurrency", "SWIFT packages"])
            #expect(try await titles("PASTA") == ["Cooking pasta"])
            #expect(try await titles("100%") == ["100% done"])
            #expect(try await titles("nothing like it").isEmpty)
        }
    }

    @Test("bad list parameters are 400")
    func listValidation() async throws {
        try await withTestApp(.sqlite, emulated: true) { t in
            let session = try await t.register()
            for query in ["limit=0", "limit=101", "limit=ten", "cursor=garbage", "cursor=\(UUID().uuidString)"] {
                let response = try await t.send(.GET, "/api/chat/?\(query)", token: session.access)
                #expect(response.status == .badRequest, "\(query)")
                _ = try response.problem()
            }
        }
    }

    @Test("patch changes only what is sent; system null removes the prompt", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func patch(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Before", system: "Old prompt")

            let renamed = try await t.send(.PATCH, "/api/chat/\(chat.id)/", json: ["title": "  After  ", "model": api.models[1]], token: session.access)
            #expect(renamed.status == .ok)
            let body = try renamed.jsonObject()
            #expect(body["title"] as? String == "After")
            #expect(body["model"] as? String == api.models[1])
            #expect(body["system"] as? String == "Old prompt")

            let cleared = try await t.send(.PATCH, "/api/chat/\(chat.id)/", json: ["system": NSNull()], token: session.access).jsonObject()
            #expect(cleared["system"] == nil || cleared["system"] is NSNull)
            #expect(cleared["title"] as? String == "After")

            for (json, field) in [(["model": "unknown-model"], "model"), (["title": NSNull()], "title"), (["title": ""], "title")] as [([String: Any], String)] {
                let refused = try await t.send(.PATCH, "/api/chat/\(chat.id)/", json: json, token: session.access)
                #expect(refused.status == .badRequest)
                #expect(try refused.problem().errors?[field] != nil)
            }
            #expect(try await t.chat(chat.id, token: session.access)["title"] as? String == "After")
        }
    }

    @Test("delete removes the chat and its messages", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func delete(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Hi")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            let kept = try await t.createChat(token: session.access, content: "Keep me")
            try await t.waitForReply(kept.messages[1].id, chat: kept.id, token: session.access)

            let response = try await t.send(.DELETE, "/api/chat/\(chat.id)/", token: session.access)

            #expect(response.status == .noContent)
            #expect(try await t.send(.GET, "/api/chat/\(chat.id)/", token: session.access).status == .notFound)
            #expect(try await t.messageCount() == 2, "only the other chat's messages are left")
        }
    }

    @Test("another user's chat is 404 on every route, and nothing changes", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func isolation(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let owner = try await t.register()
            let intruder = try await t.register()
            let chat = try await t.createChat(token: owner.access, title: "Private", content: "secret")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: owner.access)

            let attempts: [(HTTPMethod, String, [String: Any]?)] = [
                (.GET, "/api/chat/\(chat.id)/", nil),
                (.PATCH, "/api/chat/\(chat.id)/", ["title": "Mine now"]),
                (.DELETE, "/api/chat/\(chat.id)/", nil),
                (.POST, "/api/chat/\(chat.id)/send/", ["content": "hello"]),
                (.POST, "/api/chat/\(chat.id)/stop/", nil),
                (.GET, "/api/chat/\(chat.id)/messages/", nil),
            ]
            for (method, path, json) in attempts {
                let response = try await t.send(method, path, json: json, token: intruder.access)
                #expect(response.status == .notFound, "\(method) \(path)")
                #expect(try response.problem().title == "Chat not found")
            }
            let listed = try await t.send(.GET, "/api/chat/", token: intruder.access).jsonObject()
            #expect((listed["results"] as? [Any])?.isEmpty == true)
            let unchanged = try await t.chat(chat.id, token: owner.access)
            #expect(unchanged["title"] as? String == "Private")
            #expect(unchanged.messages.count == 2)
        }
    }

    @Test("a malformed chat id is 400; chat routes need a token")
    func badIDsAndAuth() async throws {
        try await withTestApp(.sqlite, emulated: true) { t in
            let session = try await t.register()
            for (method, path) in [(HTTPMethod.GET, "/api/chat/not-a-uuid/"), (.POST, "/api/chat/123/send/"), (.GET, "/api/chat/xyz/messages/")] {
                let response = try await t.send(method, path, json: method == .POST ? ["content": "x"] : nil, token: session.access)
                #expect(response.status == .badRequest, "\(path)")
                #expect(try response.problem().errors?["chat_id"] != nil)
            }
            for path in ["/api/chat/", "/api/models/", "/api/chat/\(UUID().uuidString)/messages/"] {
                #expect(try await t.send(.GET, path).status == .unauthorized, "\(path)")
            }
            #expect(try await t.messageCount() == 0)
        }
    }

    @Test("GET /api/models/ lists the models a chat may use, the default marked", arguments: UpstreamAPI.allCases)
    func models(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, emulated: true, api: api) { t in
            let session = try await t.register()
            let body = try await t.send(.GET, "/api/models/", token: session.access).jsonObject()
            let results = try #require(body["results"] as? [[String: Any]])
            #expect(results.map(\.id) == api.models)
            #expect(results.map { $0["provider"] as? String } == [api.rawValue, api.rawValue])
            #expect(results.map { $0["name"] as? String } == api.models.map(api.upstreamName(of:)))
            #expect(results.map { $0["available"] as? Bool } == [true, true])
            #expect(results.map { $0["default"] as? Bool } == [true, false])
        }
    }

    @Test("without an API key the offline provider answers, labelled as such")
    func offlineProvider() async throws {
        try await withTestApp(.sqlite, settings: ["OFFLINE_WORD_DELAY": "0"]) { t in
            let session = try await t.register()
            let models = try await t.send(.GET, "/api/models/", token: session.access).jsonObject()
            #expect((models["results"] as? [[String: Any]])?.first?["id"] as? String == "offline")

            let chat = try await t.createChat(token: session.access, content: "Hello!")
            let reply = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)

            #expect(chat["model"] as? String == "offline")
            #expect(reply["status"] as? String == "complete")
            #expect((reply["content"] as? String)?.hasPrefix("[Offline reply]") == true)
        }
    }
}

@Suite("A chat deleted while a request on it runs")
struct DeleteRaceTests {
    @Test("a send that finds the chat deleted under it is 404, not 'chat is full'", arguments: TestDatabase.all)
    func sendAfterDelete(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Gone")
            let id = try #require(UUID(uuidString: chat.id))
            // The send read the chat just before the delete committed; its reservation finds no row.
            #expect(try await t.send(.DELETE, "/api/chat/\(chat.id)/", token: session.access).status == .noContent)
            let tree = ConversationTree(chatID: id, sql: try t.db.sql())
            await #expect(throws: ChatError.chatNotFound) {
                _ = try await tree.reserve(2, newRevision: false, at: Date(), limit: 1000)
            }
        }
    }
}
