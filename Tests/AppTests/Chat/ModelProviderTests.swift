import AnthropicEmulator
@testable import App
import Foundation
import Testing
import VaporTesting

/// Several providers at once, their models listed from what is known (never waiting for one), and
/// usage whether or not a provider reports it.
@Suite("Model providers")
struct ModelProviderTests {
    /// The ids `GET /api/models/` lists, with whether each is available, and how long it took.
    private func models(_ t: TestApp, _ token: String) async throws -> (ids: [String], available: [String: Bool], took: Duration, body: [[String: Any]]) {
        let start = ContinuousClock.now
        let response = try await t.send(.GET, "/api/models/", token: token)
        let took = ContinuousClock.now - start
        let results = try #require(try response.jsonObject()["results"] as? [[String: Any]])
        let available = Dictionary(uniqueKeysWithValues: results.map { ($0.id, $0["available"] as? Bool ?? false) })
        return (results.map(\.id), available, took, results)
    }

    @Test("each model goes to its own provider through its own API: Anthropic, OpenAI, a discovered OpenAI-compatible one, a named Anthropic one",
          arguments: TestDatabase.all)
    func severalProviders(_ database: TestDatabase) async throws {
        let emulator = try await AnthropicEmulator.start()
        emulator.setModels(["llama3.2", "qwen/qwen3-8b"])
        var settings = UpstreamAPI.anthropic.settings(for: emulator)
        settings.merge(["OPENAI_BASE_URL": emulator.baseURL + "/v1", "OPENAI_API_KEY": emulator.apiKey, "OPENAI_MODELS": "gpt-emu",
                        "PROVIDERS": "local,claude",
                        "PROVIDER_LOCAL_API": "openai", "PROVIDER_LOCAL_BASE_URL": emulator.baseURL + "/v1", "PROVIDER_LOCAL_API_KEY": emulator.apiKey,
                        "PROVIDER_CLAUDE_API": "anthropic", "PROVIDER_CLAUDE_BASE_URL": emulator.baseURL, "PROVIDER_CLAUDE_API_KEY": emulator.apiKey,
                        "PROVIDER_CLAUDE_MODELS": "claude-haiku-5"]) { $1 }
        try await withTestApp(database, settings: settings) { t in
            let session = try await t.register()
            try await waitUntil("the local models to be discovered") { try await models(t, session.access).ids.contains("local/llama3.2") }
            let listed = try await models(t, session.access)
            #expect(listed.ids == ["claude-sonnet-5-5", "claude-haiku-5", "openai/gpt-emu", "local/llama3.2", "local/qwen/qwen3-8b",
                                   "claude/claude-haiku-5"])
            #expect(listed.body.first { $0["default"] as? Bool == true }?.id == "claude-sonnet-5-5", "ANTHROPIC_MODEL without DEFAULT_MODEL")
            #expect(listed.body.map { $0["provider"] as? String } == ["anthropic", "anthropic", "openai", "local", "local", "claude"])
            #expect(listed.body[4]["name"] as? String == "qwen/qwen3-8b", "a model's own name may hold /")

            let routes: [(id: String, api: String, model: String)] = [
                ("claude-haiku-5", "anthropic", "claude-haiku-5"), ("openai/gpt-emu", "openai", "gpt-emu"),
                ("local/qwen/qwen3-8b", "openai", "qwen/qwen3-8b"), ("claude/claude-haiku-5", "anthropic", "claude-haiku-5"),
            ]
            for route in routes {
                let chat = try await t.createChat(token: session.access, content: "Hello \(route.id)", model: route.id)
                let reply = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
                #expect(reply["status"] as? String == "complete")
                #expect(reply["model"] as? String == route.id)
                let request = try #require(emulator.requests.last)
                #expect(request.api == route.api && request.model == route.model, "\(route.id) went to \(request.api) as \(request.model ?? "-")")
            }
            let unknown = try await t.send(.POST, "/api/chat/", json: ["model": "local/never-listed"], token: session.access)
            #expect(unknown.status == .badRequest)
            #expect(try unknown.problem().errors?["model"] != nil)
        }
        await emulator.shutdown()
    }

    @Test("GET /api/models/ answers within a second with a provider refusing connections and one that never answers; theirs say available: false")
    func deadProviders() async throws {
        let silent = try await SilentServer.start()
        let closed = try RefusingPort()
        defer { withExtendedLifetime(closed) {} }
        let settings = ["PROVIDERS": "dead,hung,unlisted", "MODEL_CONNECT_TIMEOUT": "1s",
                        "PROVIDER_DEAD_API": "openai", "PROVIDER_DEAD_BASE_URL": closed.url("/v1"), "PROVIDER_DEAD_MODELS": "m1",
                        "PROVIDER_HUNG_API": "openai", "PROVIDER_HUNG_BASE_URL": "http://127.0.0.1:\(silent.port)/v1", "PROVIDER_HUNG_MODELS": "m2",
                        "PROVIDER_UNLISTED_API": "openai", "PROVIDER_UNLISTED_BASE_URL": "http://127.0.0.1:\(silent.port)/v1"]
        try await withTestApp(.sqlite, settings: settings, emulated: true) { t in
            let session = try await t.register()
            let atStart = try await models(t, session.access)
            #expect(atStart.took < .seconds(1), "answered in \(atStart.took) while the providers were being asked")
            #expect(atStart.ids == ["claude-sonnet-5-5", "claude-haiku-5", "dead/m1", "hung/m2"], "models never discovered are not listed")

            try await waitUntil("the dead providers to be marked") {
                let now = try await models(t, session.access).available
                return now["dead/m1"] == false && now["hung/m2"] == false
            }
            let later = try await models(t, session.access)
            #expect(later.took < .seconds(1))
            #expect(later.available == ["claude-sonnet-5-5": true, "claude-haiku-5": true, "dead/m1": false, "hung/m2": false])

            // A chat on a dead provider fails with a clear error; the others go on.
            let dead = try await t.createChat(token: session.access, content: "Anyone?", model: "dead/m1")
            let failed = try await t.waitForReply(dead.messages[1].id, chat: dead.id, token: session.access)
            #expect(failed["status"] as? String == "failed")
            #expect((failed["error"] as? String)?.contains("could not be reached") == true)
            let alive = try await t.createChat(token: session.access, content: "Hello")
            #expect(try await t.waitForReply(alive.messages[1].id, chat: alive.id, token: session.access)["status"] as? String == "complete")
        }
        await silent.shutdown()
    }

    @Test("a server without a models list still serves its configured models; one to be discovered there offers none, saying why")
    func noModelsList() async throws {
        let emulator = try await AnthropicEmulator.start()
        emulator.setModels(nil)
        let settings = ["PROVIDERS": "listed,unlisted",
                        "PROVIDER_LISTED_API": "openai", "PROVIDER_LISTED_BASE_URL": emulator.baseURL + "/v1",
                        "PROVIDER_LISTED_API_KEY": emulator.apiKey, "PROVIDER_LISTED_MODELS": "gpt-emu",
                        "PROVIDER_UNLISTED_API": "openai", "PROVIDER_UNLISTED_BASE_URL": emulator.baseURL + "/v1",
                        "PROVIDER_UNLISTED_API_KEY": emulator.apiKey]
        try await withTestApp(.sqlite, settings: settings) { t in
            let catalog = try t.services.chat.catalog
            try await waitUntil("both providers to be asked") { catalog.standings.allSatisfy { $0.standing.checkedAt != nil } }
            #expect(catalog.listing.map(\.id) == ["listed/gpt-emu"])
            #expect(catalog.listing.first?.available == true)
            let unlisted = try #require(catalog.standings.first { $0.provider.name == "unlisted" }?.standing)
            #expect(!unlisted.available && unlisted.problem?.contains("HTTP 404") == true)
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Hello", model: "listed/gpt-emu")
            #expect(try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)["status"] as? String == "complete")
        }
        await emulator.shutdown()
    }

    @Test("a DEFAULT_MODEL no provider offers falls back to the first model known: new chats still work")
    func unknownDefault() async throws {
        try await withTestApp(.sqlite, settings: ["DEFAULT_MODEL": "openai/no-such-model"], emulated: true, api: .openai) { t in
            let session = try await t.register()
            let listed = try await models(t, session.access)
            #expect(listed.body.first { $0["default"] as? Bool == true }?.id == "openai/gpt-emu")
            let chat = try await t.createChat(token: session.access, content: "Hello")
            #expect(chat["model"] as? String == "openai/gpt-emu")
        }
    }

    @Test("capabilities and context windows: as MODEL_CAPABILITIES and MODEL_CONTEXT_WINDOWS say, else the contract's defaults")
    func capabilities() async throws {
        let emulator = try await AnthropicEmulator.start()
        var settings = UpstreamAPI.anthropic.settings(for: emulator).merging(UpstreamAPI.openai.settings(for: emulator)) { $1 }
        settings.merge(["MODEL_CAPABILITIES": "openai/gpt-emu=vision+reasoning;claude-haiku-5=",
                        "MODEL_CONTEXT_WINDOWS": "openai/gpt-emu=32000", "DEFAULT_MODEL": "openai/gpt-emu-mini"]) { $1 }
        try await withTestApp(.sqlite, settings: settings) { t in
            let session = try await t.register()
            let body = try await models(t, session.access).body
            let byID = Dictionary(uniqueKeysWithValues: body.map { ($0.id, $0) })
            #expect(byID["claude-sonnet-5-5"]?["capabilities"] as? [String] == ["vision", "documents", "tools"])
            #expect(byID["claude-sonnet-5-5"]?["context_window"] as? Int == 200_000)
            #expect(byID["claude-haiku-5"]?["capabilities"] as? [String] == [])
            #expect(byID["openai/gpt-emu"]?["capabilities"] as? [String] == ["vision", "reasoning"])
            #expect(byID["openai/gpt-emu"]?["context_window"] as? Int == 32_000)
            #expect(byID["openai/gpt-emu-mini"]?["capabilities"] as? [String] == [])
            #expect(byID["openai/gpt-emu-mini"]?["context_window"] is NSNull, "unknown is null")
            #expect(byID["openai/gpt-emu-mini"]?["default"] as? Bool == true)
            let chat = try await t.createChat(token: session.access)
            #expect(chat["model"] as? String == "openai/gpt-emu-mini")
        }
        await emulator.shutdown()
    }

    @Test("an OpenAI-compatible reply without usage is estimated and counted; with it, the provider's figures, cached tokens apart",
          arguments: TestDatabase.all)
    func usage(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true, api: .openai) { t in
            let emulator = try #require(t.emulator)
            var silent = Script.Reply(["Counted", " all", " the", " same"])
            silent.omitUsage = true
            var cached = Script.Reply(["Cheap"], inputTokens: 30)
            cached.cachedTokens = 500
            emulator.enqueue(.reply(silent), .reply(cached))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Count me")
            let estimated = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            #expect(estimated["usage_estimated"] as? Bool == true)
            #expect(estimated["output_tokens"] as? Int == ReplyUsage.estimatedTokens("Counted all the same"))
            #expect(estimated["input_tokens"] as? Int ?? 0 >= 1)
            #expect(emulator.requests[0].includeUsage == true, "usage was asked for")

            let turn = try await t.sendMessage("Again", chat: chat.id, token: session.access)
            let reported = try await t.waitForReply(turn.assistant.id, chat: chat.id, token: session.access)
            #expect(reported["usage_estimated"] as? Bool == false)
            #expect(reported["input_tokens"] as? Int == 30)
            #expect(reported["cache_read_input_tokens"] as? Int == 500)
            #expect(reported["output_tokens"] as? Int == 1)

            let usage = try await t.send(.GET, "/api/usage/", token: session.access).jsonObject()
            #expect(usage["replies"] as? Int == 2)
            #expect(usage["output_tokens"] as? Int == (estimated["output_tokens"] as? Int ?? 0) + 1)
        }
    }

    @Test("a provider that sends too much, or NULs in its reasoning: the reply is cut at REPLY_MAX_SIZE and stored failed, NUL as U+FFFD",
          arguments: TestDatabase.all, UpstreamAPI.allCases)
    func hostileProvider(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        let settings = ["REPLY_MAX_SIZE": "1kb"].merging(ReasoningCase.all.first { $0.api == api }?.settings ?? [:]) { $1 }
        try await withTestApp(database, settings: settings, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            let block = String(repeating: "é", count: 200)
            emulator.enqueue(.reply(Script.Reply([block, block, block], reasoning: ["bad\u{0}thought"])))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Flood me")
            let reply = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            #expect(reply["status"] as? String == "failed")
            #expect((reply["error"] as? String)?.contains("more than a reply may hold (1024 bytes)") == true)
            #expect(reply["content"] as? String == block + block, "what fitted is kept")
            #expect(reply["reasoning"] as? String == "bad\u{FFFD}thought")
            let next = try await t.sendMessage("Again", chat: chat.id, token: session.access)
            #expect(try await t.waitForReply(next.assistant.id, chat: chat.id, token: session.access)["status"] as? String == "complete")
        }
    }

    @Test("the admin's providers page: each provider, whether it answers and why not, no key and no credentials; Check now asks again")
    func adminPage() async throws {
        let closed = try RefusingPort()
        defer { withExtendedLifetime(closed) {} }
        let settings = ["PROVIDERS": "dead", "MODEL_CONNECT_TIMEOUT": "1s", "PROVIDER_DEAD_API": "openai",
                        "PROVIDER_DEAD_BASE_URL": "http://someone:hunter2@127.0.0.1:\(closed.port)/v1", "PROVIDER_DEAD_MODELS": "m1",
                        "PROVIDER_DEAD_API_KEY": "sk-very-secret", "MODEL_CAPABILITIES": "dead/m1=tools+reasoning"]
        try await withTestApp(.sqlite, settings: settings, emulated: true) { t in
            let catalog = try t.services.chat.catalog
            try await waitUntil("the dead provider to be marked") { catalog.listing.contains { $0.id == "dead/m1" && !$0.available } }
            let admin = try await User.fixture(email: uniqueEmail("admin"), isStaff: true, isSuperuser: true, on: t.db)
            let browser = AdminClient(t)
            #expect(try await browser.signIn(admin.email).status == .seeOther)
            let page = try await browser.get("/admin/providers/")
            #expect(page.status == .ok)
            let html = browser.html
            #expect(html.contains("<code>\(closed.url("/v1"))</code>"), "the base URL without its credentials")
            #expect(!html.contains("hunter2") && !html.contains("sk-very-secret") && !html.contains(t.emulator?.apiKey ?? "-"))
            #expect(html.contains("not answering") && html.contains("could not be reached"))
            #expect(html.contains("<code>claude-sonnet-5-5</code> <span class=\"badge\">default</span>"))
            #expect(html.contains("tools, reasoning"))
            #expect(!html.contains("style="), "no inline style (the admin's policy forbids it)")

            let checked = try await browser.post("/admin/providers/check")
            #expect(checked.status == .seeOther)
            #expect(checked.headers.first(name: .location) == "/admin/providers/?notice=checked")
            #expect(try await browser.post("/admin/providers/check", csrf: "forged").status == .forbidden)
            let session = try await t.register()
            #expect(try await t.send(.GET, "/admin/providers/", token: session.access).status != .ok, "staff only")
        }
    }
}

