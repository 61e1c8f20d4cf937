@testable import App
import AnthropicEmulator
import Fluent
import Foundation
import Providers
import Testing
import VaporTesting

@Suite("Titles")
struct TitleTests {
    @Test("a chat made without a title is named after its first reply, and its streams hear of it", arguments: TestDatabase.all)
    func generated(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueueTitle(.reply(["\"Planning", " a trip", " to Lisbon.\""]))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Help me plan a trip to Lisbon in May")
            #expect(chat["title"] as? String == "Help me plan a trip to Lisbon in May", "the first line until then")
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                let events = try await stream.waitFor("the chat event") { $0.contains { $0.type == "chat" } }
                stream.close()
                let renamed = try #require(events.first { $0.type == "chat" })
                #expect(renamed.json["title"] as? String == "Planning a trip to Lisbon")
                #expect(renamed.json["id"] as? String == chat.id)
            }
            #expect(try await t.chat(chat.id, token: session.access)["title"] as? String == "Planning a trip to Lisbon")
            let request = try #require(emulator.titleRequests.first)
            #expect(request.system == ChatTitling.systemPrompt)
            #expect(request.messages.first?.content.contains("Help me plan a trip to Lisbon in May") == true)
            #expect(request.model == "claude-sonnet-5-5", "the chat's model without TITLE_MODEL")
            #expect(emulator.requests.count == 1, "the title request is not one of the chat's")

            // Named once: the next reply asks nothing.
            let next = try await t.sendMessage("And in June?", chat: chat.id, token: session.access)
            try await t.waitForReply(next.assistant.id, chat: chat.id, token: session.access)
            #expect(emulator.titleRequests.count == 1)
        }
    }

    @Test("a title given (at creation or later) is kept; a failed title request leaves the placeholder and the reply alone")
    func keptAndFailed() async throws {
        try await withTestApp(.sqlite, settings: ["TITLE_MODEL": "claude-haiku-5"], emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let titled = try await t.createChat(token: session.access, title: "Mine", content: "Hello")
            try await t.waitForReply(titled.messages[1].id, chat: titled.id, token: session.access)
            #expect(emulator.titleRequests.isEmpty)
            #expect(try await t.chat(titled.id, token: session.access)["title"] as? String == "Mine")

            // Overloaded on the first try and on every retry (the test's waits between them return at
            // once): the title request fails for good. Fewer errors than tries would let a retry name it.
            let tries = RetryPolicy().maxRetries + 1
            for _ in 0..<tries { emulator.enqueueTitle(.error(status: 529, type: "overloaded_error", message: "Overloaded")) }
            let failed = try await t.createChat(token: session.access, content: "Name me")
            let reply = try await t.waitForReply(failed.messages[1].id, chat: failed.id, token: session.access)
            #expect(reply["status"] as? String == "complete")
            try await waitUntil("every try of the title request") { emulator.titleRequests.count == tries }
            #expect(emulator.titleRequests.allSatisfy { $0.model == "claude-haiku-5" }, "TITLE_MODEL")
            #expect(try await t.chat(failed.id, token: session.access)["title"] as? String == "Name me")

            // Renamed by its owner before the next reply: no title is generated over it.
            #expect(try await t.send(.PATCH, "/api/chat/\(failed.id)/", json: ["title": "Chosen"], token: session.access).status == .ok)
            let next = try await t.sendMessage("Again", chat: failed.id, token: session.access)
            try await t.waitForReply(next.assistant.id, chat: failed.id, token: session.access)
            #expect(try await t.chat(failed.id, token: session.access)["title"] as? String == "Chosen")
            #expect(emulator.titleRequests.count == tries, "a chat its owner named is not titled again")
        }
    }

    @Test("the offline provider names a chat with the question's first words")
    func offline() async throws {
        try await withTestApp(.sqlite, settings: ["OFFLINE_WORD_DELAY": "0"]) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "What is the capital of Portugal and why is it there?")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            try await waitUntil("the title") {
                try await t.chat(chat.id, token: session.access)["title"] as? String == "What is the capital of Portugal and why"
            }
        }
    }

    @Test("a model's answer becomes a title: one line, no quotes or final dot, at most 60 characters")
    func cleaning() {
        #expect(ChatTitling.clean("Title: \"Trip to Lisbon.\"\nMore text") == "Trip to Lisbon")
        #expect(ChatTitling.clean("  **Budget   planning**  ") == "Budget planning")
        #expect(ChatTitling.clean("\n\n") == nil)
        #expect(ChatTitling.clean(String(repeating: "word ", count: 30))?.count == 60)
        #expect(ChatTitling.firstWords(of: "  Why is   the sky blue? ") == "Why is the sky blue?")
    }
}

@Suite("Search")
struct SearchTests {
    @Test("every word, any order, any case, in your messages and titles; nobody else's, no replaced version, no deleted chat",
          arguments: TestDatabase.all)
    func search(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let trip = try await t.createChat(token: session.access, title: "Holiday plans")
            emulator.enqueue(.reply(["Lisbon", " has", " tram", " 28", " and", " pastel", " de", " nata."]))
            let turn = try await t.sendMessage("Which TRAM goes through Alfama in Lisbon?", chat: trip.id, token: session.access)
            try await t.waitForReply(turn.assistant.id, chat: trip.id, token: session.access)
            let other = try await t.createChat(token: session.access, title: "Cooking")
            let cooking = try await t.sendMessage("A recipe for pastel de nata, please", chat: other.id, token: session.access)
            try await t.waitForReply(cooking.assistant.id, chat: other.id, token: session.access)
            let stranger = try await t.register()
            let theirs = try await t.createChat(token: stranger.access, title: "Lisbon tram secrets")
            let strangerTurn = try await t.sendMessage("lisbon tram", chat: theirs.id, token: stranger.access)
            try await t.waitForReply(strangerTurn.assistant.id, chat: theirs.id, token: stranger.access)

            func search(_ q: String, token: String? = nil, limit: Int? = nil, cursor: String? = nil) async throws -> [String: Any] {
                var path = "/api/search/?q=" + (q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q)
                if let limit { path += "&limit=\(limit)" }
                if let cursor { path += "&cursor=\(cursor)" }
                let response = try await t.send(.GET, path, token: token ?? session.access)
                try #require(response.status == .ok, "\(response.body.string)")
                return try response.jsonObject()
            }
            let hits = try #require(try await search("lisbon TRAM")["results"] as? [[String: Any]])
            #expect(Set(hits.compactMap { $0["message_id"] as? String }) == [turn.user.id, turn.assistant.id])
            #expect(hits.allSatisfy { $0["chat_id"] as? String == trip.id && $0["chat_title"] as? String == "Holiday plans" })
            #expect(hits.contains { ($0["snippet"] as? String)?.lowercased().contains("tram") == true })
            let question = try #require(hits.first { $0["message_id"] as? String == turn.user.id })
            #expect(question["role"] as? String == "user")

            let both = try #require(try await search("nata pastel")["results"] as? [[String: Any]])
            #expect(Set(both.compactMap { $0["chat_id"] as? String }) == [trip.id, other.id])
            let title = try #require(try await search("holiday")["results"] as? [[String: Any]])
            #expect(title.count == 1 && title[0]["message_id"] is NSNull && title[0]["snippet"] as? String == "Holiday plans")
            #expect((try await search("alfama sunset")["results"] as? [[String: Any]])?.isEmpty == true, "every word must be there")

            // Pages.
            let first = try await search("nata", limit: 1)
            let next = try #require(first["next"] as? String)
            let second = try await search("nata", limit: 1, cursor: next)
            let firstHit = (first["results"] as? [[String: Any]])?.first?["message_id"] as? String
            let secondHit = (second["results"] as? [[String: Any]])?.first?["message_id"] as? String
            #expect(firstHit != nil && secondHit != nil && firstHit != secondHit)

            // A regenerated reply's old text is no longer found; its new one is.
            emulator.enqueue(.reply(["Take", " the", " funicular", " instead."]))
            let regenerated = try #require(try await t.send(.POST, "/api/chat/\(trip.id)/regenerate/", token: session.access)
                .jsonObject()["assistant_message"] as? [String: Any])
            try await t.waitForReply(regenerated.id, chat: trip.id, token: session.access)
            let tram = try #require(try await search("tram")["results"] as? [[String: Any]])
            #expect(!tram.contains { $0["message_id"] as? String == turn.assistant.id })
            #expect(try #require(try await search("funicular")["results"] as? [[String: Any]]).first?["message_id"] as? String == regenerated.id)

            // Renamed and deleted chats.
            _ = try await t.send(.PATCH, "/api/chat/\(other.id)/", json: ["title": "Desserts"], token: session.access)
            #expect((try await search("desserts")["results"] as? [[String: Any]])?.first?["chat_id"] as? String == other.id)
            #expect(try await t.send(.DELETE, "/api/chat/\(other.id)/", token: session.access).status == .noContent)
            #expect((try await search("recipe")["results"] as? [[String: Any]])?.isEmpty == true)
        }
    }

    @Test("bad queries are 400 problems", arguments: TestDatabase.all)
    func badInput(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            for path in ["/api/search/", "/api/search/?q=", "/api/search/?q=%20%20", "/api/search/?q=%2B%2B%2B", "/api/search/?q=a%00b",
                         "/api/search/?q=a&limit=0", "/api/search/?q=a&limit=x", "/api/search/?q=a&cursor=nope",
                         "/api/search/?q=" + String(repeating: "a", count: 201)] {
                let response = try await t.send(.GET, path, token: session.access)
                #expect(response.status == .badRequest, "\(path)")
                _ = try response.problem()
            }
            #expect(try await t.send(.GET, "/api/search/?q=x").status == .unauthorized)
            // An empty cursor is no cursor: the first page (as schema fuzzing expects of a string parameter).
            #expect(try await t.send(.GET, "/api/search/?q=x&cursor=", token: session.access).status == .ok)
            #expect(try await t.send(.GET, "/api/chat/?cursor=", token: session.access).status == .ok)
        }
    }
}

@Suite("Export")
struct ExportTests {
    @Test("Markdown or JSON, as a download named after the title", arguments: TestDatabase.all)
    func export(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Trip \"plans\" / Lisbon\nday 1 — café", system: "Be brief.")
            let turn = try await t.sendMessage("Where to eat?", chat: chat.id, token: session.access)
            try await t.waitForReply(turn.assistant.id, chat: chat.id, token: session.access)

            let markdown = try await t.send(.GET, "/api/chat/\(chat.id)/export/", token: session.access)
            #expect(markdown.status == .ok)
            #expect(markdown.headers.first(name: .contentType)?.hasPrefix("text/markdown") == true)
            let disposition = try #require(markdown.headers.first(name: .contentDisposition))
            #expect(disposition.hasPrefix("attachment; filename=\"Trip _plans_ _ Lisbon day 1 _ caf_.md\""), "\(disposition)")
            #expect(disposition.contains("filename*=UTF-8''Trip%20%22plans%22%20%2F%20Lisbon%20day%201%20%E2%80%94%20caf%C3%A9.md"), "\(disposition)")
            let text = markdown.body.string
            #expect(text.hasPrefix("# Trip \"plans\" / Lisbon day 1 — café\n"))
            #expect(text.contains("> **System:** Be brief."))
            #expect(text.contains("## You · ") && text.contains("Where to eat?"))
            #expect(text.contains("## Assistant · ") && text.contains("Echo: Where to eat?"))

            let json = try await t.send(.GET, "/api/chat/\(chat.id)/export/?format=json", token: session.access)
            #expect(json.headers.contentType == .json)
            #expect(json.headers.first(name: .contentDisposition)?.contains(".json\"") == true)
            let exported = try json.jsonObject()
            #expect(exported.messages.map(\.id) == [turn.user.id, turn.assistant.id])

            #expect(try await t.send(.GET, "/api/chat/\(chat.id)/export/?format=pdf", token: session.access).status == .badRequest)
            #expect(try await t.send(.GET, "/api/chat/\(chat.id)/export/?format=", token: session.access).status == .badRequest,
                    "an empty format is not one of the formats")
            #expect(try await t.send(.GET, "/api/chat/\(chat.id)/export/?format=md", token: session.access).status == .ok)
            let stranger = try await t.register()
            #expect(try await t.send(.GET, "/api/chat/\(chat.id)/export/", token: stranger.access).status == .notFound)
        }
    }
}

@Suite("Usage and quotas")
struct UsageTests {
    @Test("usage counts each reply once from the provider's figures, cache reads and writes apart, with cost when prices are set",
          arguments: TestDatabase.all)
    func accounting(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["MODEL_PRICES": "claude-sonnet-5-5=3,15,0.3,3.75"], emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let empty = try await t.send(.GET, "/api/usage/", token: session.access).jsonObject()
            #expect(empty["replies"] as? Int == 0 && empty["input_tokens"] as? Int == 0)
            #expect((empty["quota"] as? [String: Any])?["tokens_per_day"] is NSNull)

            // A retried request (overloaded, then answered) counts as one reply with the answer's usage.
            emulator.enqueue(.error(status: 529, type: "overloaded_error", message: "Overloaded"),
                             .reply(Script.Reply(["One", " two"], inputTokens: 40)))
            let chat = try await t.createChat(token: session.access, content: "Count me")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            emulator.enqueue(.reply(Script.Reply(["Three"], inputTokens: 60)))
            let turn = try await t.sendMessage("Again", chat: chat.id, token: session.access)
            try await t.waitForReply(turn.assistant.id, chat: chat.id, token: session.access)

            let usage = try await t.send(.GET, "/api/usage/", token: session.access).jsonObject()
            #expect(usage["replies"] as? Int == 2)
            #expect(usage["input_tokens"] as? Int == 100)
            #expect(usage["output_tokens"] as? Int == 3)
            let stored = try await t.chat(chat.id, token: session.access).messages.filter { $0["role"] as? String == "assistant" }
            #expect(usage["cache_read_input_tokens"] as? Int == stored.reduce(0) { $0 + ($1["cache_read_input_tokens"] as? Int ?? 0) })
            let models = try #require(usage["models"] as? [[String: Any]])
            #expect(models.count == 1 && models[0]["model"] as? String == "claude-sonnet-5-5")
            let cost = try #require(usage["cost_usd"] as? Double)
            let expected = (100.0 * 3 + 3.0 * 15 + Double(usage["cache_read_input_tokens"] as? Int ?? 0) * 0.3
                + Double(usage["cache_creation_input_tokens"] as? Int ?? 0) * 3.75) / 1_000_000
            #expect(abs(cost - expected) < 1e-9)
            let start = try #require(usage["period_start"] as? String)
            #expect(start.hasSuffix("T00:00:00.000Z"))

            // Another user's replies are theirs.
            let stranger = try await t.register()
            #expect(try await t.send(.GET, "/api/usage/", token: stranger.access).jsonObject()["replies"] as? Int == 0)
        }
    }

    @Test("past the daily quota a reply is refused (429 quota_exceeded, Retry-After to midnight UTC, nothing stored); a reply in flight runs on; the admin lifts it",
          arguments: TestDatabase.all)
    func quota(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["QUOTA_TOKENS_PER_DAY": "50"], emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Budget")
            // The reply that crosses the quota runs to its end.
            emulator.enqueue(.reply(Script.Reply(["Long", " answer"], inputTokens: 80)))
            let turn = try await t.sendMessage("First", chat: chat.id, token: session.access)
            #expect(try await t.waitForReply(turn.assistant.id, chat: chat.id, token: session.access)["status"] as? String == "complete")
            let usage = try await t.send(.GET, "/api/usage/", token: session.access).jsonObject()
            #expect((usage["quota"] as? [String: Any])?["tokens_per_day"] as? Int == 50)
            #expect((usage["quota"] as? [String: Any])?["remaining"] as? Int == 0)

            let before = try await t.messageCount()
            for (method, path, body): (HTTPMethod, String, [String: Any]) in [
                (.POST, "/api/chat/\(chat.id)/send/", ["content": "More"]),
                (.POST, "/api/chat/", ["content": "A new chat"]),
                (.POST, "/api/chat/\(chat.id)/regenerate/", [:]),
                (.POST, "/api/chat/\(chat.id)/edit/", ["message_id": turn.user.id, "content": "Changed"]),
            ] {
                let refused = try await t.send(method, path, json: body, token: session.access)
                #expect(refused.status == .tooManyRequests, "\(path)")
                #expect(try refused.problem().code == "quota_exceeded")
                let retryAfter = try #require(refused.headers.first(name: "Retry-After").flatMap(Int.init))
                let midnight = UsageLedger.nextMidnight(after: t.clock.now()).timeIntervalSince(t.clock.now())
                #expect(abs(Double(retryAfter) - midnight) <= 1)
            }
            #expect(try await t.messageCount() == before, "nothing stored")
            #expect(try await t.send(.POST, "/api/chat/", json: ["title": "No reply, no quota"], token: session.access).status == .created)

            // Unlimited for this user (the admin's setting): replies start again.
            let user = try #require(try await User.find(UUID(uuidString: session.user.id), on: t.db))
            let admin = try await User.fixture(email: uniqueEmail("admin"), isStaff: true, isSuperuser: true, on: t.db)
            _ = try await t.services.accounts.update(user, with: .init(name: "", role: .basic, isStaff: false, isActive: true,
                                                                        isSuperuser: false, dailyTokenQuota: -1), by: admin, on: t.db)
            let again = try await t.sendMessage("More", chat: chat.id, token: session.access)
            try await t.waitForReply(again.assistant.id, chat: chat.id, token: session.access)
            let lifted = try await t.send(.GET, "/api/usage/", token: session.access).jsonObject()
            #expect((lifted["quota"] as? [String: Any])?["tokens_per_day"] is NSNull)

            // Tomorrow the quota starts over.
            _ = try await t.services.accounts.update(user, with: .init(name: "", role: .basic, isStaff: false, isActive: true,
                                                                        isSuperuser: false, dailyTokenQuota: nil), by: admin, on: t.db)
            #expect(try await t.send(.POST, "/api/chat/\(chat.id)/send/", json: ["content": "x"], token: session.access).status == .tooManyRequests)
            t.clock.advance(by: 86_400)
            let signedIn = try await t.login(email: session.user.email)
            let token = try #require(try signedIn.jsonObject()["access"] as? String)
            let tomorrow = try await t.sendMessage("A new day", chat: chat.id, token: token)
            try await t.waitForReply(tomorrow.assistant.id, chat: chat.id, token: token)
        }
    }

    @Test("a long chat marks its stable start for the prompt cache, and the next reply's cache reads are accounted")
    func promptCaching() async throws {
        try await withTestApp(.sqlite, emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Long", system: String(repeating: "You are thorough. ", count: 200))
            for number in 1...3 {
                let turn = try await t.sendMessage("Question \(number): " + String(repeating: "context ", count: 300), chat: chat.id,
                                                   token: session.access)
                try await t.waitForReply(turn.assistant.id, chat: chat.id, token: session.access)
            }
            let last = try #require(emulator.requests.last)
            #expect(last.systemCached, "the system prompt carries cache_control")
            #expect(!last.cacheBreakpoints.isEmpty, "so does the stable start of the conversation")
            let usage = try await t.send(.GET, "/api/usage/", token: session.access).jsonObject()
            #expect((usage["cache_read_input_tokens"] as? Int ?? 0) > 0, "the repeated start was read from the cache")
            #expect((usage["cache_creation_input_tokens"] as? Int ?? 0) > 0)
        }
    }
}

@Suite("Usage in the admin")
struct AdminUsageTests {
    @Test("the usage page shows each day as a bar, and each user and model; a user's quota is set on their page")
    func page() async throws {
        try await withTestApp(.sqlite, settings: ["QUOTA_TOKENS_PER_DAY": "100000"], emulated: true) { t in
            let session = try await t.register(email: uniqueEmail("spender"))
            let chat = try await t.createChat(token: session.access, content: "Spend some tokens")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            let admin = try await User.fixture(email: uniqueEmail("admin"), isStaff: true, isSuperuser: true, on: t.db)
            let browser = AdminClient(t)
            #expect(try await browser.signIn(admin.email).status == .seeOther)
            try await browser.get("/admin/usage/")
            #expect(browser.html.contains(session.user.email))
            #expect(browser.html.contains("claude-sonnet-5-5"))
            #expect(browser.html.contains("<svg class=\"bar\""))
            #expect(!browser.html.contains("style="), "no inline style (the admin's policy forbids it)")
            try await browser.get("/admin/usage/?days=7&user=\(session.user.id)")
            #expect(browser.html.contains("of \(session.user.email)"))

            try await browser.get("/admin/users/\(session.user.id)/")
            #expect(browser.html.contains("100000 tokens"))
            let saved = try await browser.post("/admin/users/\(session.user.id)/", ["name": "", "role": "basic", "is_active": "on",
                                                                                    "daily_token_quota": "unlimited"])
            #expect(saved.status == .seeOther)
            #expect(try await User.find(UUID(uuidString: session.user.id), on: t.db)?.dailyTokenQuota == -1)
            try await browser.get("/admin/users/\(session.user.id)/")
            let bad = try await browser.post("/admin/users/\(session.user.id)/", ["name": "", "role": "basic", "is_active": "on",
                                                                                  "daily_token_quota": "lots"])
            #expect(bad.status == .badRequest)
            #expect(try await User.find(UUID(uuidString: session.user.id), on: t.db)?.dailyTokenQuota == -1, "unchanged")
        }
    }
}
