@testable import App
import AnthropicEmulator
import Foundation
import NIOCore
import Providers
import Testing
import VaporTesting

/// Runs `body` with `servers` configured as the MCP servers (`MCP_SERVERS`), the chat model
/// allowed tools on either API, once the servers' tools are listed.
func withToolApp(_ database: TestDatabase, api: UpstreamAPI = .anthropic, servers: [MCPToolServer], settings extra: [String: String] = [:],
                 _ body: (TestApp) async throws -> Void) async throws {
    var settings = ["MCP_SERVERS": servers.map { "\($0.name)=\($0.url)" }.joined(separator: ",")]
    if api == .openai { settings["MODEL_CAPABILITIES"] = "openai/gpt-emu=tools" }
    settings.merge(extra) { $1 }
    try await withTestApp(database, settings: settings, emulated: true, api: api) { t in
        let tools = try t.services.chat.tools
        try await waitUntil("the MCP servers' tools to be listed", timeout: .seconds(30)) {
            servers.allSatisfy { server in tools.listing.contains { $0.server == server.name && $0.available } }
        }
        try await body(t)
    }
}

/// The name a tool of `server` has for the model (``ToolBox``).

func modelName(_ server: String, _ tool: String) -> String { "\(server)__\(tool)" }

@Suite("Tools: the MCP servers' tools, listed and chosen per chat")
struct ToolListingTests {
    @Test("GET /api/tools/ answers within a second with every server's tools; one down, one hanging and one refusing the token hide no other's; the token is sent")
    func listing() async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        let beta = try await MCPToolServer.start(name: "beta", token: "s3cret", json: true)
        let hung = try await SilentServer.start()
        let down = try RefusingPort()
        defer { withExtendedLifetime(down) {}; alpha.stop(); beta.stop() }
        let settings = ["MCP_SERVERS": "alpha=\(alpha.url),beta=\(beta.url),gamma=\(down.url("/mcp")),delta=http://127.0.0.1:\(hung.port)/mcp,wrong=\(beta.url)",
                        "MCP_SERVER_BETA_TOKEN": "s3cret", "MCP_SERVER_WRONG_TOKEN": "not-it"]
        try await withTestApp(.sqlite, settings: settings, emulated: true) { t in
            let session = try await t.register()
            let started = ContinuousClock.now
            let first = try await t.send(.GET, "/api/tools/", token: session.access)
            #expect(first.status == .ok)
            #expect(started.duration(to: .now) < .seconds(1), "answered while the servers were being asked")
            let tools = try t.services.chat.tools
            try await waitUntil("alpha and beta listed, gamma and wrong refused", timeout: .seconds(30)) {
                let standings = Dictionary(uniqueKeysWithValues: tools.standings.map { ($0.server.name, $0.standing) })
                return standings["alpha"]?.available == true && standings["beta"]?.available == true
                    && standings["gamma"]?.checkedAt != nil && standings["wrong"]?.checkedAt != nil
            }
            let timed = ContinuousClock.now
            let response = try await t.send(.GET, "/api/tools/", token: session.access)
            #expect(timed.duration(to: .now) < .seconds(1))
            let results = try #require(try response.jsonObject()["results"] as? [[String: Any]])
            let byName = Dictionary(uniqueKeysWithValues: results.compactMap { item in (item["name"] as? String).map { ($0, item) } })
            for tool in ["echo", "add", "fail", "hang", "gate", "big", "weather"] {
                #expect(byName["alpha.\(tool)"]?["available"] as? Bool == true, "alpha.\(tool)")
                #expect(byName["beta.\(tool)"]?["available"] as? Bool == true, "beta.\(tool), listed with its token")
            }
            #expect((byName["alpha.echo"]?["description"] as? String)?.hasPrefix("[alpha]") == true)
            #expect(byName["alpha.add"]?["server"] as? String == "alpha")
            for never in ["gamma", "delta", "wrong"] {
                #expect(byName["\(never).*"]?["available"] as? Bool == false, "\(never) is one entry, not available")
                #expect(byName["\(never).*"]?["description"] == nil)
            }
            let problems = Dictionary(uniqueKeysWithValues: tools.standings.map { ($0.server.name, $0.standing.problem ?? "") })
            #expect(problems["wrong"]?.contains("refused the credentials") == true, "\(problems["wrong"] ?? "")")
            #expect(problems["gamma"]?.contains("could not reach") == true, "\(problems["gamma"] ?? "")")

            #expect(try await t.send(.GET, "/api/tools/").status == .unauthorized)
        }
        await hung.shutdown()
    }

    @Test("a hostile server: 300 tools with 10 KB descriptions are kept to 256 with 4 KiB each; an answer of 10 MB is refused unread past 8 MiB, an error result; the reply goes on")
    func hostileServer() async throws {
        let evil = try await MCPToolServer.start(name: "evil", hostile: true)
        defer { evil.stop() }
        try await withToolApp(.sqlite, servers: [evil]) { t in
            let tools = try t.services.chat.tools
            let listed = tools.listing.filter { $0.server == "evil" }
            #expect(listed.count == MCPClient.maxTools)
            #expect(listed.allSatisfy { ($0.description ?? "").utf8.count <= MCPClient.maxDescriptionBytes })
            let emulator = try #require(t.emulator)
            emulator.enqueue(.calling([.init(id: "h", name: modelName("evil", "huge"), arguments: "{}")]), .reply(["Survived."]))
            let session = try await t.register()
            let chat = try await t.send(.POST, "/api/chat/", json: ["tools": ["evil.*"], "content": "Flood me"], token: session.access).jsonObject()
            let stored = try await t.waitForReply(try #require(chat.messages.last).id, chat: chat.id, token: session.access, timeout: .seconds(30))
            #expect(stored["status"] as? String == "complete" && stored["content"] as? String == "Survived.")
            let call = try #require((stored["tool_calls"] as? [[String: Any]])?.first)
            #expect(call["is_error"] as? Bool == true)
            let result = call["result"] as? String ?? ""
            #expect(result.contains("larger than 8388608 bytes"), "\(result)")
            #expect(evil.calls == ["huge"])
            #expect(result.utf8.count <= 64 << 10)
        }
    }

    @Test("a chat's tools: set on create and PATCH, shown on the chat and in lists; unknown servers, bad names, too many and too long are 400 and change nothing",
          arguments: TestDatabase.all)
    func selection(_ database: TestDatabase) async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        defer { alpha.stop() }
        try await withToolApp(database, servers: [alpha]) { t in
            let session = try await t.register()
            let created = try await t.send(.POST, "/api/chat/", json: ["title": "Tools", "tools": ["alpha.add", "alpha.*", "alpha.add"]],
                                           token: session.access)
            #expect(created.status == .created)
            let chat = try created.jsonObject()
            #expect(chat["tools"] as? [String] == ["alpha.add", "alpha.*"], "each once, in order")
            let listed = try await t.send(.GET, "/api/chat/", token: session.access).jsonObject()["results"] as? [[String: Any]]
            #expect(listed?.first?["tools"] as? [String] == ["alpha.add", "alpha.*"])

            let chats = try await Chat.query(on: t.db).count()
            let refusedCreate = try await t.send(.POST, "/api/chat/", json: ["content": "hi", "tools": ["nowhere.add"]], token: session.access)
            #expect(refusedCreate.status == .badRequest)
            #expect(try refusedCreate.problem().errors?["tools"]?.first?.contains("nowhere") == true)
            #expect(try await Chat.query(on: t.db).count() == chats, "nothing stored")

            let hostile: [(Any, String)] = [
                (["alpha"], "no dot"), (["alpha."], "nothing after the dot"), ([".add"], "no server"),
                (["alpha." + String(repeating: "é", count: 100)], "201 bytes in 101 characters"),
                (["alpha.a\u{0}b"], "a NUL"), (Array(repeating: "alpha.add", count: 65), "65 entries"),
                ("alpha.add", "not a list"), ([1, 2], "not strings"),
            ]
            for (value, why) in hostile {
                let response = try await t.send(.PATCH, "/api/chat/\(chat.id)/", json: ["tools": value, "title": "Changed"], token: session.access)
                #expect(response.status == .badRequest, "\(why)")
            }
            var stored = try await t.chat(chat.id, token: session.access)
            #expect(stored["tools"] as? [String] == ["alpha.add", "alpha.*"] && stored["title"] as? String == "Tools", "nothing changed")

            let patched = try await t.send(.PATCH, "/api/chat/\(chat.id)/", json: ["tools": ["alpha.echo"]], token: session.access)
            #expect(try patched.jsonObject()["tools"] as? [String] == ["alpha.echo"])
            let cleared = try await t.send(.PATCH, "/api/chat/\(chat.id)/", json: ["tools": NSNull()], token: session.access)
            #expect(try cleared.jsonObject()["tools"] as? [String] == [])
            stored = try await t.chat(chat.id, token: session.access)
            #expect(stored["tools"] as? [String] == [])

            // Someone else's chat stays theirs.
            let other = try await t.register()
            #expect(try await t.send(.PATCH, "/api/chat/\(chat.id)/", json: ["tools": ["alpha.*"]], token: other.access).status == .notFound)
        }
    }
}

@Suite("Tools in the admin")
struct AdminToolTests {
    @Test("the admin's tools page: each server, whether it answers and why not, never its token or credentials; Check now asks again (CSRF); a reply's calls on its message page, escaped")
    func adminPages() async throws {
        let alpha = try await MCPToolServer.start(name: "alpha", token: "tok-very-secret")
        let down = try RefusingPort()
        defer { withExtendedLifetime(down) {}; alpha.stop() }
        let settings = ["MCP_SERVERS": "alpha=\(alpha.url),down=http://user:pw-secret@127.0.0.1:\(down.port)/mcp",
                        "MCP_SERVER_ALPHA_TOKEN": "tok-very-secret"]
        try await withTestApp(.sqlite, settings: settings, emulated: true) { t in
            let tools = try t.services.chat.tools
            try await waitUntil("both servers asked", timeout: .seconds(30)) { tools.standings.allSatisfy { $0.standing.checkedAt != nil } }
            let emulator = try #require(t.emulator)
            emulator.enqueue(.calling([.init(id: "c1", name: modelName("alpha", "big"), arguments: #"{"size": 12}"#)]), .reply(["Done."]))
            let session = try await t.register()
            let chat = try await t.send(.POST, "/api/chat/", json: ["tools": ["alpha.big"], "content": "<script>x</script>"],
                                        token: session.access).jsonObject()
            let reply = try #require(chat.messages.last).id
            try await t.waitForReply(reply, chat: chat.id, token: session.access)

            let admin = try await User.fixture(email: uniqueEmail("admin"), isStaff: true, isSuperuser: true, on: t.db)
            let browser = AdminClient(t)
            #expect(try await browser.signIn(admin.email).status == .seeOther)
            #expect(try await browser.get("/admin/tools/").status == .ok)
            var html = browser.html
            #expect(html.contains("<code>\(alpha.url)</code>") && html.contains("<code>http://127.0.0.1:\(down.port)/mcp</code>"))
            #expect(!html.contains("tok-very-secret") && !html.contains("pw-secret"), "no token, no credentials")
            #expect(html.contains("not answering") && html.contains("could not reach"))
            #expect(html.contains("<code>alpha.weather</code>") && html.contains("[alpha] The weather in a city"))
            #expect(!html.contains("style="), "no inline style")
            let checked = try await browser.post("/admin/tools/check")
            #expect(checked.status == .seeOther && checked.headers.first(name: .location) == "/admin/tools/?notice=checked")
            #expect(try await browser.post("/admin/tools/check", csrf: "forged").status == .forbidden)
            #expect(try await t.send(.GET, "/admin/tools/", token: session.access).status != .ok, "staff only")

            #expect(try await browser.get("/admin/messages/\(reply)/").status == .ok)
            html = browser.html
            #expect(html.contains("<code>alpha.big</code>") && html.contains("&lt;b&gt;&amp;xxxxxxxx"), "the result escaped")
            #expect(!html.contains("<b>&"))
        }
    }
}

@Suite("Tools: the model calls them during a reply")
struct ToolCallTests {
    @Test("the model calls a tool, gets its result and answers: the stream shows the call and its result live with resumable ids, the message keeps them, every round counts",
          arguments: TestDatabase.all, UpstreamAPI.allCases)
    func callAndAnswer(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        defer { alpha.stop() }
        try await withToolApp(database, api: api, servers: [alpha]) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.calling([.init(id: "call_1", name: modelName("alpha", "add"), arguments: #"{"a": 2, "b": 3}"#)], saying: ["Let", " me add."]),
                             .reply(["It is", " 5."]))
            let session = try await t.register()
            let created = try await t.send(.POST, "/api/chat/", json: ["title": "Sums", "tools": ["alpha.*"]], token: session.access)
            let chat = try created.jsonObject()
            try await t.withLiveServer { base in
                let path = "/api/chat/\(chat.id)/messages/"
                let stream = try await EventStreamClient.open(base, path, token: session.access)
                let turn = try await t.sendMessage("What is 2 + 3?", chat: chat.id, token: session.access)
                let id = turn.assistant.id
                let events = try await stream.waitForDone(id)
                stream.close()

                let kinds = events.filter { ["delta", "tool_call", "tool_result", "done"].contains($0.type) }.map(\.type)
                let runs = kinds.enumerated().filter { $0.offset == 0 || kinds[$0.offset - 1] != $0.element }.map(\.element)
                #expect(runs == ["delta", "tool_call", "tool_result", "delta", "done"], "\(kinds)")
                let call = try #require(events.first { $0.type == "tool_call" }?.json)
                #expect(call["name"] as? String == "alpha.add" && call["call_id"] as? String == "call_1" && call["message_id"] as? String == id)
                #expect(call["arguments"] as? [String: Int] == ["a": 2, "b": 3])
                let result = try #require(events.first { $0.type == "tool_result" }?.json)
                #expect(result["content"] as? String == "5" && result["is_error"] as? Bool == false && result["call_id"] as? String == "call_1")
                #expect(events.replyText(id) == "Let me add.It is 5.")
                let ids = events.compactMap(\.id).compactMap(StreamPosition.init(eventID:))
                #expect(ids == ids.sorted() && Set(ids).count == ids.count, "ids in order, each once")

                let stored = try await t.waitForReply(id, chat: chat.id, token: session.access)
                #expect(stored["status"] as? String == "complete" && stored["content"] as? String == "Let me add.It is 5.")
                let calls = try #require(stored["tool_calls"] as? [[String: Any]])
                #expect(calls.count == 1)
                #expect(calls.first?["name"] as? String == "alpha.add" && calls.first?["result"] as? String == "5")
                #expect(calls.first?["is_error"] as? Bool == false && (calls.first?["duration_ms"] as? Int ?? -1) >= 0)
                #expect(Set(calls.first?.keys.map { $0 } ?? []) == ["call_id", "name", "arguments", "result", "is_error", "duration_ms"])
                #expect(alpha.calls == ["add"])

                // Both rounds asked with the tools declared; the second carried the call and its result back.
                let requests = emulator.requests
                #expect(requests.count == 2)
                #expect(requests.allSatisfy { $0.tools.contains(modelName("alpha", "add")) && $0.tools.count == 9 && $0.toolChoice == nil })
                #expect(requests.last?.toolUses == [RecordedToolUse(id: "call_1", name: modelName("alpha", "add"), input: #"{"a":2,"b":3}"#)])
                #expect(requests.last?.toolResults == [RecordedToolResult(id: "call_1", content: "5", isError: false)])
                // Every round counts: the provider's figures of both.
                if api == .anthropic {
                    #expect(stored["input_tokens"] as? Int == 42 && stored["usage_estimated"] as? Bool == false, "\(stored["input_tokens"] ?? "-")")
                }
                let usage = try await t.send(.GET, "/api/usage/", token: session.access).jsonObject()
                #expect(usage["input_tokens"] as? Int == stored["input_tokens"] as? Int)

                // A reader that had everything up to the call resumes from its id with exactly the rest.
                let callID = try #require(events.first { $0.type == "tool_call" }?.id)
                let resumed = try await EventStreamClient.open(base, path, token: session.access, lastEventID: callID)
                let rest = try await resumed.waitForDone(id)
                resumed.close()
                #expect(rest.filter { $0.type != "done" }.map(\.type) == ["tool_result", "delta"], "\(rest.map(\.type))")
                #expect(rest.first { $0.type == "delta" }?.json["text"] as? String == "It is 5.")
                // A new reader gets the message whole, its calls in it.
                let fresh = try await EventStreamClient.open(base, path, token: session.access)
                let replay = try await fresh.waitFor("the replay") { $0.contains { $0.type == "message" && $0.json["id"] as? String == id } }
                fresh.close()
                let replayed = try #require(replay.first { $0.json["id"] as? String == id }?.json["tool_calls"] as? [[String: Any]])
                #expect(replayed.first?["result"] as? String == "5")
            }
        }
    }

    @Test("a tool that fails, one that hangs past TOOL_TIMEOUT, one too large, one never declared and arguments that are not an object: each an error result (or a cut one), and the reply goes on",
          arguments: UpstreamAPI.allCases)
    func failures(_ api: UpstreamAPI) async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        defer { alpha.stop() }
        try await withToolApp(.sqlite, api: api, servers: [alpha], settings: ["TOOL_TIMEOUT": "1s", "TOOL_MAX_RESULT_SIZE": "1kb"]) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.calling([
                .init(id: "c1", name: modelName("alpha", "fail"), arguments: #"{"reason": "boom"}"#),
                .init(id: "c2", name: modelName("alpha", "hang"), arguments: "{}"),
                .init(id: "c3", name: modelName("alpha", "big"), arguments: #"{"size": 100000}"#),
                .init(id: "c4", name: "nowhere__tool", arguments: "{}"),
                .init(id: "c5", name: modelName("alpha", "echo"), arguments: #"["not", "an object"]"#),
            ]), .reply(["Done."]))
            let session = try await t.register()
            let chat = try await t.send(.POST, "/api/chat/", json: ["tools": ["alpha.*"], "content": "Try them"], token: session.access).jsonObject()
            let id = try #require(chat.messages.last).id
            let stored = try await t.waitForReply(id, chat: chat.id, token: session.access, timeout: .seconds(30))
            #expect(stored["status"] as? String == "complete" && stored["content"] as? String == "Done.")
            let calls = try #require(stored["tool_calls"] as? [[String: Any]])
            #expect(calls.count == 5)
            #expect(calls.allSatisfy { $0["result"] is String })
            #expect(calls[0]["is_error"] as? Bool == true && (calls[0]["result"] as? String)?.contains("boom") == true, "\(calls[0])")
            #expect(calls[1]["is_error"] as? Bool == true && (calls[1]["result"] as? String)?.contains("no answer within 1 s") == true, "\(calls[1])")
            let big = try #require(calls[2]["result"] as? String)
            #expect(calls[2]["is_error"] as? Bool == false && big.utf8.count <= 1024 && big.hasSuffix(ToolBox.cutMarker) && big.hasPrefix("<b>&"))
            #expect(calls[3]["name"] as? String == "nowhere__tool" && calls[3]["is_error"] as? Bool == true)
            #expect(calls[4]["is_error"] as? Bool == true && (calls[4]["result"] as? String)?.contains("not a JSON object") == true)
            #expect(alpha.calls == ["fail", "hang", "big"], "only the declared tools with object arguments were called")
            let results = try #require(emulator.requests.last?.toolResults)
            #expect(results.map(\.id) == ["c1", "c2", "c3", "c4", "c5"])
            if api == .anthropic { #expect(results.map(\.isError) == [true, true, false, true, true]) }
        }
    }

    @Test("each user's calls run in an MCP session of their own: what one user's call left in the server's session, another's cannot read",
          arguments: TestDatabase.all)
    func sessionsPerUser(_ database: TestDatabase) async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        defer { alpha.stop() }
        try await withToolApp(database, servers: [alpha]) { t in
            let emulator = try #require(t.emulator)
            func ask(_ session: SessionBody, _ tool: String, _ arguments: String) async throws -> String? {
                emulator.enqueue(.calling([.init(id: "c", name: modelName("alpha", tool), arguments: arguments)]), .reply(["Ok."]))
                let chat = try await t.send(.POST, "/api/chat/", json: ["tools": ["alpha.*"], "content": "Go"], token: session.access).jsonObject()
                let stored = try await t.waitForReply(try #require(chat.messages.last).id, chat: chat.id, token: session.access)
                return (stored["tool_calls"] as? [[String: Any]])?.first?["result"] as? String
            }
            let first = try await t.register()
            let second = try await t.register()
            #expect(try await ask(first, "remember", #"{"text": "first's secret"}"#) == "remembered")
            #expect(try await ask(second, "recall", "{}") == "nothing", "another user's session")
            #expect(try await ask(first, "recall", "{}") == "first's secret", "the same user's session, kept")
        }
    }

    @Test("after TOOL_MAX_STEPS rounds the model is asked once more, the tools still declared but tool_choice none, and that answer ends the reply",
          arguments: UpstreamAPI.allCases)
    func maxSteps(_ api: UpstreamAPI) async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        defer { alpha.stop() }
        try await withToolApp(.sqlite, api: api, servers: [alpha], settings: ["TOOL_MAX_STEPS": "2"]) { t in
            let emulator = try #require(t.emulator)
            let again = Script.calling([.init(id: "c", name: modelName("alpha", "echo"), arguments: #"{"text": "again"}"#)])
            emulator.enqueue(again, again, .reply(["Enough."]))
            let session = try await t.register()
            let chat = try await t.send(.POST, "/api/chat/", json: ["tools": ["alpha.echo"], "content": "Loop"], token: session.access).jsonObject()
            let stored = try await t.waitForReply(try #require(chat.messages.last).id, chat: chat.id, token: session.access, timeout: .seconds(30))
            #expect(stored["status"] as? String == "complete" && stored["content"] as? String == "Enough.")
            #expect((stored["tool_calls"] as? [[String: Any]])?.count == 2)
            let requests = emulator.requests
            #expect(requests.count == 3)
            #expect(requests.map(\.toolChoice) == [nil, nil, "none"])
            #expect(requests.allSatisfy { $0.tools == [modelName("alpha", "echo")] }, "declared on every round, only the chat's")
        }
    }

    @Test("when the user's quota runs out between rounds the reply is not cut: its next round is its last, without tools", arguments: TestDatabase.all)
    func quotaBetweenRounds(_ database: TestDatabase) async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        defer { alpha.stop() }
        try await withToolApp(database, servers: [alpha], settings: ["QUOTA_TOKENS_PER_DAY": "100"]) { t in
            let emulator = try #require(t.emulator)
            var expensive = Script.Reply([])
            expensive.toolCalls = [.init(id: "c", name: modelName("alpha", "echo"), arguments: #"{"text": "x"}"#)]
            expensive.inputTokens = 150
            emulator.enqueue(.reply(expensive), .reply(["Within", " budget."]))
            let session = try await t.register()
            let chat = try await t.send(.POST, "/api/chat/", json: ["tools": ["alpha.*"], "content": "Go"], token: session.access).jsonObject()
            let stored = try await t.waitForReply(try #require(chat.messages.last).id, chat: chat.id, token: session.access)
            #expect(stored["status"] as? String == "complete" && stored["content"] as? String == "Within budget.")
            #expect(emulator.requests.map(\.toolChoice) == [nil, "none"])
            let refused = try await t.send(.POST, "/api/chat/\(chat.id)/send/", json: ["content": "More"], token: session.access)
            #expect(refused.status == .tooManyRequests)
            #expect(try refused.problem().code == "quota_exceeded")
        }
    }

    @Test("stop during a call ends the call and the reply: cancelled, the call kept as stopped, the stream told", arguments: TestDatabase.all)
    func stopDuringCall(_ database: TestDatabase) async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        defer { alpha.stop() }
        try await withToolApp(database, servers: [alpha]) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.calling([.init(id: "c", name: modelName("alpha", "gate"), arguments: #"{"name": "never"}"#)], saying: ["Waiting."]))
            let session = try await t.register()
            let chat = try await t.send(.POST, "/api/chat/", json: ["title": "Stop", "tools": ["alpha.gate"]], token: session.access).jsonObject()
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                let turn = try await t.sendMessage("Wait", chat: chat.id, token: session.access)
                try await stream.waitFor("the call") { $0.contains { $0.type == "tool_call" } }
                let stopped = try await t.send(.POST, "/api/chat/\(chat.id)/stop/", token: session.access)
                #expect(stopped.status == .ok)
                let body = try stopped.jsonObject()
                #expect(body["status"] as? String == "cancelled" && body["content"] as? String == "Waiting.")
                let call = try #require((body["tool_calls"] as? [[String: Any]])?.first)
                #expect(call["result"] as? String == "The reply was stopped during the call." && call["is_error"] as? Bool == true)
                let events = try await stream.waitForDone(turn.assistant.id)
                stream.close()
                #expect(events.last?.json["status"] as? String == "cancelled")
                #expect(emulator.requests.count == 1, "the model was not asked again")
            }
        }
    }

    @Test("a stream that reconnects in the middle of a call gets the call's result and the rest exactly once; one that had only the text gets the call first",
          arguments: TestDatabase.all)
    func resumeMidCall(_ database: TestDatabase) async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        defer { alpha.stop() }
        try await withToolApp(database, servers: [alpha]) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.calling([.init(id: "c", name: modelName("alpha", "gate"), arguments: #"{"name": "g1"}"#)], saying: ["Asking."]),
                             .reply(["Answered."]))
            let session = try await t.register()
            let chat = try await t.send(.POST, "/api/chat/", json: ["title": "Resume", "tools": ["alpha.*"]], token: session.access).jsonObject()
            let path = "/api/chat/\(chat.id)/messages/"
            try await t.withLiveServer { base in
                let first = try await EventStreamClient.open(base, path, token: session.access)
                let turn = try await t.sendMessage("Go", chat: chat.id, token: session.access)
                let before = try await first.waitFor("the call") { $0.contains { $0.type == "tool_call" } }
                first.close()
                let callID = try #require(before.last { $0.type == "tool_call" }?.id)
                let textID = try #require(before.last { $0.type == "delta" }?.id)

                let afterCall = try await EventStreamClient.open(base, path, token: session.access, lastEventID: callID)
                let afterText = try await EventStreamClient.open(base, path, token: session.access, lastEventID: textID)
                let early = try await afterText.waitFor("the call, caught up") { $0.contains { $0.type == "tool_call" } }
                #expect(early.filter { $0.type != "tool_call" }.isEmpty, "nothing but the call: \(early.map(\.type))")
                alpha.open(gate: "g1")
                let one = try await afterCall.waitForDone(turn.assistant.id)
                let two = try await afterText.waitForDone(turn.assistant.id)
                afterCall.close()
                afterText.close()
                #expect(one.map(\.type) == ["tool_result", "delta", "done"], "\(one.map(\.type))")
                #expect(two.map(\.type) == ["tool_call", "tool_result", "delta", "done"], "\(two.map(\.type))")
                #expect(one.first?.json["content"] as? String == "gate g1 opened")
            }
        }
    }

    @Test("a call in flight on an instance that is killed (kill -9): a stream on another instance saw the call live; the reply is failed within the lease, its text kept, the call marked interrupted",
          arguments: UpstreamAPI.allCases)
    func killedMidCall(_ api: UpstreamAPI) async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        defer { alpha.stop() }
        var settings = ["REPLY_LEASE": "3s", "REPLY_CHECKPOINT_INTERVAL": "1s", "MCP_SERVERS": "alpha=\(alpha.url)"]
        if api == .openai { settings["MODEL_CAPABILITIES"] = "openai/gpt-emu=tools" }
        try await withTwoInstances(settings: settings, api: api) { a, b, _ in
            let emulator = try #require(a.emulator)
            let url = try #require(TestDatabase.postgresURL)
            let schema = try #require(a.settings.database.searchPath?.first)
            // A third instance, a real process on the same database, runs the reply and is killed mid-call.
            var environment = TestSettings.environment(.postgres(url: url)).merging(settings) { $1 }
            environment.merge(api.settings(for: emulator)) { $1 }
            environment.merge(["DATABASE_SCHEMA": schema, "AUTO_MIGRATE": "false"]) { $1 }
            let process = try await ServerProcess.start(environment)
            let session = try await a.register()
            let headers: HTTPHeaders = ["Host": "localhost", "Authorization": "Bearer \(session.access)", "Content-Type": "application/json"]
            try await waitUntil("the process to list the tools", timeout: .seconds(30)) {
                let listed = try await LiveHTTP.send(.GET, process.baseURL + "/api/tools/", headers: headers)
                return listed.body.contains(#""name":"alpha.gate""#) && !listed.body.contains(#""available":false"#)
            }
            emulator.enqueue(.calling([.init(id: "c1", name: modelName("alpha", "gate"), arguments: #"{"name": "never"}"#)], saying: ["Looking", " it up."]))
            let chat = try await a.send(.POST, "/api/chat/", json: ["title": "Killed", "tools": ["alpha.*"]], token: session.access).jsonObject()
            try await b.withLiveServer { baseB in
                let stream = try await EventStreamClient.open(baseB, "/api/chat/\(chat.id)/messages/", token: session.access)
                let sent = try await LiveHTTP.send(.POST, process.baseURL + "/api/chat/\(chat.id)/send/", headers: headers,
                                                  body: ByteBuffer(string: #"{"content":"go"}"#))
                #expect(sent.status == .accepted)
                let body = try JSONSerialization.jsonObject(with: Data(sent.body.utf8)) as? [String: Any]
                let assistant = try #require(body?["assistant_message"] as? [String: Any]).id
                let live = try await stream.waitFor("the call, from the other instance", timeout: .seconds(20)) { $0.contains { $0.type == "tool_call" } }
                #expect(live.first { $0.type == "tool_call" }?.json["name"] as? String == "alpha.gate")
                #expect(live.replyText(assistant) == "Looking it up.")

                process.kill()
                b.clock.set(Date().addingTimeInterval(4))
                let events = try await stream.waitFor("the done of the killed instance's reply", timeout: .seconds(15)) {
                    $0.contains { $0.type == "done" }
                }
                stream.close()
                let done = try #require(events.last?.json)
                #expect(done["status"] as? String == "failed" && done["content"] as? String == "Looking it up.")
                let call = try #require((done["tool_calls"] as? [[String: Any]])?.first)
                #expect(call["is_error"] as? Bool == true && (call["result"] as? String)?.contains("interrupted") == true, "\(call)")
            }
        }
    }
}
