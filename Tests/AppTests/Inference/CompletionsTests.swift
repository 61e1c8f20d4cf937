import AnthropicEmulator
@testable import App
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import VaporTesting

/// A user turn.
private func question() -> [String: Any] { ["role": "user", "content": "Hello?"] }

extension TestApp {
    /// `POST /v1/chat/completions` with `json`.
    func complete(_ json: [String: Any], token: String?, headers: HTTPHeaders = [:],
                  sourceLocation: SourceLocation = #_sourceLocation) async throws -> TestingHTTPResponse {
        try await send(.POST, "/v1/chat/completions", json: json, token: token, headers: headers, sourceLocation: sourceLocation)
    }

    /// Tokens `session`'s user has of today's usage, and replies counted.
    func usageToday(_ token: String) async throws -> (tokens: Int, replies: Int) {
        let usage = try await send(.GET, "/api/usage/", token: token).jsonObject()
        let tokens = ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
            .reduce(0) { $0 + (usage[$1] as? Int ?? 0) }
        return (tokens, usage["replies"] as? Int ?? 0)
    }
}

extension TestingHTTPResponse {
    /// OpenAI's `{"error": {…}}`.
    func openAIError(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        try #require(headers.first(name: .contentType) == "application/json", "\(headers)", sourceLocation: sourceLocation)
        return try #require(try jsonObject()["error"] as? [String: Any], "\(body.string)", sourceLocation: sourceLocation)
    }

    /// The `data:` payloads of an event stream, in order.
    var eventData: [String] {
        body.string.components(separatedBy: "\n\n").compactMap { event in
            event.hasPrefix("data: ") ? String(event.dropFirst("data: ".count)) : nil
        }
    }
}

/// The JSON object of an event's data.
func jsonObject(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

@Suite("The OpenAI-compatible API: /v1/models and /v1/chat/completions")
struct CompletionsTests {
    @Test("GET /v1/models lists every model in OpenAI's format, for a key of either scope and for an access token; without a credential, 401 in OpenAI's format",
          arguments: UpstreamAPI.allCases)
    func models(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, emulated: true, api: api) { t in
            let session = try await t.register()
            for token in [session.access, try #require(try await t.makeKey(session)["key"] as? String),
                          try #require(try await t.makeKey(session, scope: "full")["key"] as? String)] {
                let listed = try await t.send(.GET, "/v1/models", token: token)
                #expect(listed.status == .ok)
                let body = try listed.jsonObject()
                let data = try #require(body["data"] as? [[String: Any]])
                #expect(body["object"] as? String == "list" && data.compactMap { $0["id"] as? String } == api.models)
                #expect(data.allSatisfy { $0["object"] as? String == "model" && $0["created"] is Int && $0["owned_by"] is String })
            }
            let anonymous = try await t.send(.GET, "/v1/models")
            #expect(anonymous.status == .unauthorized && anonymous.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
            let error = try anonymous.openAIError()
            #expect(error["type"] as? String == "authentication_error" && error["code"] as? String == "invalid_api_key")
            #expect(try await t.send(.GET, "/v1/nothing-here", token: session.access).openAIError()["code"] as? String == "not_found")
        }
    }

    @Test("a completion answered whole: the model gets the system prompt, the turns, max_tokens, temperature and stop; the answer and its usage are OpenAI's; the usage counts today, and no chat is stored",
          arguments: TestDatabase.all, UpstreamAPI.allCases)
    func whole(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(["Bon", "jour"]))
            let session = try await t.register()
            let key = try #require(try await t.makeKey(session)["key"] as? String)
            let response = try await t.complete([
                "model": api.defaultModel, "max_completion_tokens": 77, "temperature": 0.25, "stop": "END",
                "messages": [["role": "system", "content": "Be brief."], ["role": "user", "content": "Hi"],
                             ["role": "assistant", "content": "Hello."], ["role": "developer", "content": [["type": "text", "text": "In French."]]],
                             ["role": "user", "content": [["type": "text", "text": "Again"]]]],
                "user": "ignored", "seed": 7,
            ], token: key)
            #expect(response.status == .ok, "\(response.body.string)")
            let body = try response.jsonObject()
            #expect(body["object"] as? String == "chat.completion" && (body["id"] as? String)?.hasPrefix("chatcmpl-") == true)
            #expect(body["model"] as? String == api.defaultModel)
            let choice = try #require((body["choices"] as? [[String: Any]])?.first)
            #expect((choice["message"] as? [String: Any])?["content"] as? String == "Bonjour" && choice["finish_reason"] as? String == "stop")
            let usage = try #require(body["usage"] as? [String: Any])
            #expect(usage["prompt_tokens"] as? Int == 21 && usage["completion_tokens"] as? Int == 2 && usage["total_tokens"] as? Int == 23)

            let sent = try #require(emulator.requests.last)
            #expect(sent.model == api.upstreamName(of: api.defaultModel))
            #expect(sent.system == "Be brief.\n\nIn French.")
            #expect(sent.messages.map(\.role) == ["user", "assistant", "user"] && sent.messages.map(\.content) == ["Hi", "Hello.", "Again"])
            #expect(sent.maxTokens == 77 && sent.temperature == 0.25 && sent.stop == ["END"])
            #expect(!sent.headers.values.contains { $0.contains(key) }, "the caller's key never goes upstream")

            let today = try await t.usageToday(session.access)
            #expect(today.tokens == 23 && today.replies == 1)
            // Past the operator's MAX_TOKENS, a request asks for MAX_TOKENS.
            emulator.enqueue(.reply(["Short"]))
            #expect(try await t.complete(["model": api.defaultModel, "messages": [question()], "max_tokens": 900_000], token: key).status == .ok)
            #expect(emulator.requests.last?.maxTokens == (try t.services.chat.catalog.maxTokens))
            let chats = try await Chat.query(on: t.db).count(), messages = try await Message.query(on: t.db).count()
            #expect(chats == 0 && messages == 0)
        }
    }

    @Test("streamed: the role first, the pieces in order, the finish, the usage when asked for, then [DONE]; counted like a chat reply",
          arguments: UpstreamAPI.allCases)
    func streamed(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            let pieces = ["Hé", "llo", " \"wörld\"\n", " 👋🏽", "\\ done\t"]
            emulator.enqueue(.reply(Script.Reply(pieces, stopReason: "max_tokens")), .reply(["Plain"]))
            let session = try await t.register()
            let response = try await t.complete(["model": api.defaultModel, "messages": [question()], "stream": true,
                                                 "stream_options": ["include_usage": true]], token: session.access)
            #expect(response.status == .ok && response.headers.first(name: .contentType)?.hasPrefix("text/event-stream") == true)
            let events = response.eventData
            #expect(events.last == "[DONE]")
            let chunks = events.dropLast().map(jsonObject)
            #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" && $0["id"] as? String == chunks[0]["id"] as? String })
            let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
            #expect(deltas.first?["role"] as? String == "assistant")
            #expect(deltas.compactMap { $0["content"] as? String }.joined() == pieces.joined())
            let finishes = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
            #expect(finishes == ["length"])
            let usage = try #require(chunks.last?["usage"] as? [String: Any])
            #expect((chunks.last?["choices"] as? [Any])?.isEmpty == true && usage["completion_tokens"] as? Int == pieces.count)

            // Without include_usage: no usage chunk, and no usage member at all.
            let plain = try await t.complete(["model": api.defaultModel, "messages": [question()], "stream": true], token: session.access)
            #expect(plain.eventData.last == "[DONE]" && !plain.body.string.contains("usage"))
            #expect(try await t.usageToday(session.access).replies == 2)
        }
    }

    @Test("hostile input is refused in OpenAI's format, naming the field, before the model is asked; nothing is counted")
    func hostileInput() async throws {
        try await withTestApp(.sqlite, settings: ["V1_MAX_BODY_SIZE": "64kb", "RATE_LIMIT_ENABLED": "false"], emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let model = UpstreamAPI.anthropic.defaultModel
            func message(_ content: Any, role: String = "user") -> [String: Any] { ["role": role, "content": content] }
            let png = TestFiles.png
            func image(_ data: Data) -> [String: Any] { ["type": "image_url", "image_url": ["url": "data:image/png;base64," + data.base64EncodedString()]] }
            let cases: [(String, [String: Any], HTTPStatus, String?)] = [
                ("no model", ["messages": [question()]], .badRequest, "model"),
                ("an empty model", ["model": "", "messages": [question()]], .badRequest, "model"),
                ("no messages", ["model": model, "messages": [[String: Any]]()], .badRequest, "messages"),
                ("1,001 messages", ["model": model, "messages": Array(repeating: question(), count: 1001)], .badRequest, "messages.1000"),
                ("101 parts in a message", ["model": model, "messages": [message(Array(repeating: ["type": "text", "text": "x"], count: 101))]],
                 .badRequest, "messages.0.content.100"),
                ("only a system prompt", ["model": model, "messages": [message("Be brief.", role: "system")]], .badRequest, "messages"),
                ("a tool message", ["model": model, "messages": [question(), message("42", role: "tool")]], .badRequest, "messages.1.role"),
                ("an unknown role", ["model": model, "messages": [message("x", role: "root")]], .badRequest, "messages.0.role"),
                ("a user message without content", ["model": model, "messages": [["role": "user"]]], .badRequest, "messages.0.content"),
                ("content of the wrong type", ["model": model, "messages": [message(42)]], .badRequest, "messages.0.content"),
                ("an audio part", ["model": model, "messages": [message([["type": "input_audio", "input_audio": ["data": "AA"]]])]],
                 .badRequest, "messages.0.content.0"),
                ("an image URL to fetch", ["model": model, "messages": [message([["type": "image_url", "image_url": ["url": "http://169.254.169.254/latest"]]])]],
                 .badRequest, "messages.0.content.0.image_url"),
                ("a data URL that is not an image", ["model": model, "messages": [message([["type": "image_url", "image_url": ["url": "data:image/png;base64," + Data("<svg/>".utf8).base64EncodedString()]]])]],
                 .badRequest, "messages.0.content.0.image_url"),
                ("broken base64", ["model": model, "messages": [message([["type": "image_url", "image_url": ["url": "data:image/png;base64,%%%"]]])]],
                 .badRequest, "messages.0.content.0.image_url"),
                ("21 images", ["model": model, "messages": [message(Array(repeating: image(png), count: 21))]],
                 .badRequest, "messages"),
                ("an image in an assistant turn", ["model": model, "messages": [message([image(png)], role: "assistant"), question()]],
                 .badRequest, "messages.0.content.0"),
                ("an image over 8,000 pixels a side", ["model": model, "messages": [message([image(TestFiles.png(width: 8001, height: 2))])]],
                 .badRequest, "messages.0.content.0.image_url"),
                ("n = 2", ["model": model, "messages": [question()], "n": 2], .badRequest, "n"),
                ("tools", ["model": model, "messages": [question()], "tools": [["type": "function"]]], .badRequest, "tools"),
                ("max_tokens 0", ["model": model, "messages": [question()], "max_tokens": 0], .badRequest, "max_tokens"),
                ("max_completion_tokens past any model", ["model": model, "messages": [question()], "max_completion_tokens": 1_000_001], .badRequest, "max_completion_tokens"),
                ("max_tokens past Int64", ["model": model, "messages": [question()], "max_tokens": 1e30], .badRequest, nil),
                ("a temperature of 3", ["model": model, "messages": [question()], "temperature": 3], .badRequest, "temperature"),
                ("a negative temperature", ["model": model, "messages": [question()], "temperature": -0.1], .badRequest, "temperature"),
                ("a temperature over Anthropic's 1", ["model": model, "messages": [question()], "temperature": 1.5], .badRequest, "temperature"),
                ("five stop sequences", ["model": model, "messages": [question()], "stop": ["a", "b", "c", "d", "e"]], .badRequest, "stop"),
                ("an empty stop sequence", ["model": model, "messages": [question()], "stop": [""]], .badRequest, "stop"),
                ("a stop sequence of 1,001 bytes in 334 characters", ["model": model, "messages": [question()], "stop": String(repeating: "€", count: 333) + "ab"],
                 .badRequest, "stop"),
                ("an unknown model", ["model": "gpt-nothing", "messages": [question()]], .notFound, nil),
                ("another provider's prefix", ["model": "openai/" + model, "messages": [question()]], .notFound, nil),
            ]
            for (what, json, status, param) in cases {
                let response = try await t.complete(json, token: session.access)
                #expect(response.status == status, "\(what): \(response.status) \(response.body.string.prefix(300))")
                let error = try response.openAIError()
                #expect(error["message"] is String && error["type"] as? String == "invalid_request_error", "\(what)")
                if let param { #expect(error["param"] as? String == param, "\(what): param \(error["param"] ?? "none")") }
                if status == .notFound { #expect(error["code"] as? String == "model_not_found", "\(what)") }
            }
            // Bodies: too large in bytes (on a real connection, where the limit applies as the body
            // streams in), not JSON, not an object.
            let large = try JSONSerialization.data(withJSONObject: ["model": model, "messages": [message(String(repeating: "é", count: 40_000))]])
            try await t.withLiveServer { base in
                let response = try await LiveHTTP.send(.POST, base + "/v1/chat/completions",
                                                       headers: ["Content-Type": "application/json", "Authorization": "Bearer \(session.access)"],
                                                       body: ByteBuffer(data: large))
                #expect(response.status == .payloadTooLarge)
                let error = (jsonObject(response.body)["error"] as? [String: Any]) ?? [:]
                #expect(error["code"] as? String == "request_too_large" && response.headers.first(name: "Content-Type") == "application/json")
            }
            let notJSON = try await t.send(.POST, "/v1/chat/completions", body: "model=x", contentType: "application/x-www-form-urlencoded", token: session.access)
            #expect(notJSON.status == .unsupportedMediaType)
            #expect(try notJSON.openAIError()["type"] as? String == "invalid_request_error")
            let array = try await t.send(.POST, "/v1/chat/completions", body: "[1]", contentType: "application/json", token: session.access)
            #expect(array.status == .badRequest)
            _ = try array.openAIError()

            #expect(emulator.requests.isEmpty, "the model was never asked")
            let usage = try await t.usageToday(session.access)
            #expect(usage.tokens == 0 && usage.replies == 0)
        }
    }

    @Test("an image goes to a model with vision as an image; one for a model without is 400 unsupported_attachment, before the model is asked",
          arguments: UpstreamAPI.allCases)
    func images(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, settings: ["MODEL_CAPABILITIES": "\(api.models[0])=vision;\(api.models[1])=tools"], emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(["A pixel"]))
            let session = try await t.register()
            let parts: [[String: Any]] = [["type": "text", "text": "What is it?"],
                                          ["type": "image_url", "image_url": ["url": "data:image/png;base64," + TestFiles.png.base64EncodedString(), "detail": "low"]]]
            let seen = try await t.complete(["model": api.models[0], "messages": [["role": "user", "content": parts]]], token: session.access)
            #expect(seen.status == .ok, "\(seen.body.string)")
            let sent = try #require(emulator.requests.last)
            #expect(sent.attachments.last?.map(\.mediaType) == ["image/png"] && sent.messages.last?.content == "What is it?")
            #expect(sent.attachments.last?.first?.data == TestFiles.png)

            let blind = try await t.complete(["model": api.models[1], "messages": [["role": "user", "content": parts]]], token: session.access)
            #expect(blind.status == .badRequest)
            let error = try blind.openAIError()
            #expect(error["code"] as? String == "unsupported_attachment" && error["param"] as? String == "messages.0.content.1.image_url")
            #expect(emulator.requests.count == 1)
        }
    }
}
