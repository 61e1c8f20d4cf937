import AnthropicEmulator
@testable import App
import Foundation
import NIOHTTP1
import Providers
import Testing
import VaporTesting

/// A user turn.
private func question() -> [String: Any] { ["role": "user", "content": "Hello?"] }

@Suite("The OpenAI-compatible API under failures and limits")
struct CompletionLimitsTests {
    @Test("the model's failure before the first piece is an HTTP error of its kind; after it, an error event and no [DONE]; what was consumed counts either way",
          arguments: UpstreamAPI.allCases)
    func upstreamFailures(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let ask: [String: Any] = ["model": api.defaultModel, "messages": [question()]]

            emulator.enqueue(.error(status: 400, type: "invalid_request_error", message: "prompt is too long"))
            let refused = try await t.complete(ask, token: session.access)
            #expect(refused.status == .badRequest)
            let error = try refused.openAIError()
            #expect(error["code"] as? String == "upstream_invalid_request" && (error["message"] as? String)?.contains("prompt is too long") == true)

            emulator.enqueue(.error(status: 401, type: "authentication_error", message: "invalid x-api-key"))
            let misconfigured = try await t.complete(ask.merging(["stream": true]) { $1 }, token: session.access)
            #expect(misconfigured.status == .badGateway)
            let upstreamError = try misconfigured.openAIError()
            #expect(upstreamError["type"] as? String == "server_error")
            #expect((upstreamError["message"] as? String)?.contains("x-api-key") == false, "what the provider said of this server's key stays in the log")

            emulator.enqueue(.reply(Script.Reply(["Half", " a"], errorAfterChunks: "overloaded_error")))
            let cut = try await t.complete(ask.merging(["stream": true]) { $1 }, token: session.access)
            #expect(cut.status == .ok)
            let events = cut.eventData
            #expect(!events.contains("[DONE]"))
            let last = jsonObject(try #require(events.last))["error"] as? [String: Any]
            #expect(last?["message"] is String && last?["type"] is String, "\(events)")
            let text = events.dropLast().compactMap { ((jsonObject($0)["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String }
            #expect(text.joined() == "Half a")
            #expect(try await t.usageToday(session.access).replies == 3, "every ended request is counted, even one refused upstream")
            #expect(try await t.usageToday(session.access).tokens > 0)
        }
    }

    @Test("a reasoning model's thinking counts toward the quota even when the provider reports no usage and the client leaves before the answer")
    func reasoningCounts() async throws {
        try await withTestApp(.sqlite, emulated: true, api: .openai) { t in
            let emulator = try #require(t.emulator)
            var reply = Script.Reply(["Answer"], reasoning: Array(repeating: String(repeating: "think ", count: 50), count: 20))
            reply.omitUsage = true
            emulator.enqueue(.reply(reply))
            let session = try await t.register()
            let response = try await t.complete(["model": UpstreamAPI.openai.defaultModel, "messages": [question()], "stream": true], token: session.access)
            let reasoning = response.eventData.dropLast().compactMap {
                ((jsonObject($0)["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["reasoning_content"] as? String
            }
            #expect(reasoning.joined().utf8.count == 6000)
            #expect(try await t.usageToday(session.access).tokens >= 2000, "6,000 bytes of reasoning are about 2,000 tokens")
        }
    }

    @Test("the daily quota: refused in OpenAI's format once spent; a running completion holds its prompt's estimate, so that concurrent requests cannot together pass the quota",
          arguments: TestDatabase.all)
    func quota(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["QUOTA_TOKENS_PER_DAY": "1000"], emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let model = UpstreamAPI.anthropic.defaultModel
            // A prompt estimated at about 1,500 tokens starts under a quota of 1,000 (nothing is used
            // yet); while it runs, it holds its estimate, and a second one cannot start.
            let long = #"{"model": "\#(model)", "stream": true, "messages": [{"role": "user", "content": "\#(String(repeating: "word ", count: 900))"}]}"#
            func start() async throws -> TestingHTTPResponse {
                try await t.send(.POST, "/v1/chat/completions", body: long, contentType: "application/json", token: session.access)
            }
            emulator.enqueue(.reply(Script.Reply(["Waiting"], pauseAfter: 0)))
            let first = Task { try await start() }
            try await waitUntil("the first completion to be running upstream") { emulator.pausedCount == 1 }
            let second = try await start()
            #expect(second.status == .tooManyRequests && second.headers.first(name: "Retry-After") != nil)
            let error = try second.openAIError()
            #expect(error["type"] as? String == "insufficient_quota" && error["code"] as? String == "quota_exceeded")
            emulator.openGate()
            #expect(try await first.value.eventData.last == "[DONE]")
            // Its reservation is gone once it ended: what remains is what it used.
            let reservations = try await t.db.sql().raw("SELECT COUNT(*) AS n FROM usage_reservations").first()?.decode(column: "n", as: Int.self)
            #expect(reservations == 0)
            emulator.enqueue(.reply(["Fits"]))
            #expect(try await t.complete(["model": model, "messages": [question()]], token: session.access).status == .ok)

            // Spent: refused before the model is asked.
            try await UsageLedger.record(.init(inputTokens: 5000), model: model, for: .user(try #require(UUID(uuidString: session.user.id))), at: t.clock.now(), on: t.db.sql())
            let asked = emulator.requests.count
            let spent = try await t.complete(["model": model, "messages": [question()]], token: session.access)
            #expect(spent.status == .tooManyRequests)
            #expect(try spent.openAIError()["code"] as? String == "quota_exceeded")
            #expect(emulator.requests.count == asked)
        }
    }

    @Test("the reply rate limit counts completions with chat replies, per user, whichever credential: 429 in OpenAI's format")
    func rateLimited() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_REPLIES": "2/hour"], emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(["One"]), .reply(["Two"]))
            let session = try await t.register()
            let key = try #require(try await t.makeKey(session)["key"] as? String)
            let ask: [String: Any] = ["model": UpstreamAPI.anthropic.defaultModel, "messages": [question()]]
            #expect(try await t.complete(ask, token: key).status == .ok)
            #expect(try await t.complete(ask, token: session.access).status == .ok)
            let limited = try await t.complete(ask, token: key)
            #expect(limited.status == .tooManyRequests && limited.headers.first(name: "Retry-After") != nil)
            let error = try limited.openAIError()
            #expect(error["type"] as? String == "rate_limit_error" && error["code"] as? String == "rate_limit_exceeded")
        }
    }

    @Test("a request this server relayed before is refused (508) before the model is asked; the instances a request passed through go upstream with this one's")
    func relayLoop() async throws {
        try await withTestApp(.sqlite, emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let own = try t.services.relayID
            let ask: [String: Any] = ["model": UpstreamAPI.anthropic.defaultModel, "messages": [question()]]
            let looped = try await t.complete(ask, token: session.access, headers: [RelayHeader.name: own])
            #expect(looped.status == .loopDetected)
            #expect(try looped.openAIError()["code"] as? String == "loop_detected")
            #expect(emulator.requests.isEmpty)

            emulator.enqueue(.reply(["Relayed"]))
            let first = UUID().lowercased, second = UUID().lowercased
            // Ids as a proxy may join them; what is not an instance's id is dropped, not passed on.
            let headers: HTTPHeaders = [RelayHeader.name: "\(first), \(second), <script>\(String(repeating: "x", count: 5000))"]
            #expect(try await t.complete(ask, token: session.access, headers: headers).status == .ok)
            let relayed = try #require(emulator.requests.last?.headers[RelayHeader.name])
            #expect(relayed.contains(first) && relayed.contains(second) && relayed.contains(own) && !relayed.contains("script"), "\(relayed)")
            // A chain longer than any real one is a loop, whatever its ids.
            let long: HTTPHeaders = [RelayHeader.name: (0..<17).map { _ in UUID().lowercased }.joined(separator: ",")]
            #expect(try await t.complete(ask, token: session.access, headers: long).status == .loopDetected)
            #expect(emulator.requests.count == 1)
        }
    }

    @Test("a client that leaves a streamed completion stops the upstream request (which would never end); what it consumed is counted", arguments: UpstreamAPI.allCases)
    func clientLeaves(_ api: UpstreamAPI) async throws {
        // A silent stream is written to every keep-alive interval: that write finds the client gone.
        try await withTestApp(.sqlite, settings: ["SSE_KEEPALIVE_INTERVAL": "0.05"], emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Never", " ending"], hangAfterChunks: true)))
            let session = try await t.register()
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/v1/chat/completions", token: session.access, method: .POST, json: [
                    "model": api.defaultModel, "messages": [question()], "stream": true,
                ])
                #expect(stream.status == .ok)
                try await stream.waitFor("the first pieces") { $0.contains { $0.data.contains("ending") } }
                stream.close()
                try await waitUntil("the reply to end and be counted") { try await t.usageToday(session.access).replies == 1 }
                #expect(try await t.usageToday(session.access).tokens > 0)
            }
        }
    }
}
