import AnthropicEmulator
import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import Providers

@Suite("Provider clients: the same guarantees on every wire")
struct ProviderClientTests {
    @Test("a reply streams its deltas in order, then its stop reason and usage", arguments: WireAPI.allCases)
    func streamsReply(api: WireAPI) async throws {
        try await withEmulatedProvider(api) { e in
            e.emulator.enqueue(.reply(["Hel", "lo", ", wörld 👋", " \"quoted\"\n"]))

            let reply = await collect(e.client)

            #expect(reply.error == nil)
            #expect(reply.pieces == ["Hel", "lo", ", wörld 👋", " \"quoted\"\n"], "thinking deltas and unknown events are skipped")
            #expect(reply.finished?.stopReason == "end_turn")
            #expect(reply.finished?.usage == ModelUsage(inputTokens: 21, outputTokens: 4))
        }
    }

    @Test("the request carries the key, version, model, system prompt and conversation")
    func requestShape() async throws {
        try await withEmulatedProvider { e in
            _ = await collect(e.client)

            let request = try #require(e.emulator.requests.first)
            #expect(request.headers["x-api-key"] == e.emulator.apiKey)
            #expect(request.headers["authorization"] == nil)
            #expect(request.headers["anthropic-version"] == "2023-06-01")
            #expect(request.headers["content-type"] == "application/json")
            #expect(request.model == "claude-sonnet-5-5")
            #expect(request.maxTokens == 256)
            #expect(request.stream == true)
            #expect(request.system == "Be brief.")
            #expect(request.messages.map(\.role) == ["user", "assistant", "user"])
            #expect(request.messages.map(\.content) == ["Hello", "Hi!", "How are you?"])
        }
    }

    @Test("the key can go as Authorization: Bearer instead")
    func bearerScheme() async throws {
        try await withEmulatedProvider(authScheme: .bearer) { e in
            let reply = await collect(e.client)
            #expect(reply.finished != nil)
            #expect(e.emulator.requests.first?.headers["authorization"] == "Bearer \(e.emulator.apiKey)")
            #expect(e.emulator.requests.first?.headers["x-api-key"] == nil)
        }
    }

    @Test("429 with retry-after is retried after the time asked, then succeeds", arguments: WireAPI.allCases)
    func rateLimitedThenSuccess(api: WireAPI) async throws {
        try await withEmulatedProvider(api) { e in
            e.emulator.enqueue(
                .error(status: 429, type: "rate_limit_error", message: "Number of requests has exceeded your rate limit", headers: ["retry-after": "7"]),
                .reply(["Fine", " now."])
            )

            let reply = await collect(e.client)

            #expect(reply.text == "Fine now.")
            #expect(e.emulator.requests.count == 2)
            #expect(e.sleeps.all == [.seconds(7)])
        }
    }

    @Test("500, 502, 503, 504 and 529 are retried with growing backoff until retries run out", arguments: [500, 502, 503, 504, 529], WireAPI.allCases)
    func transientStatusesExhaustRetries(status: Int, api: WireAPI) async throws {
        try await withEmulatedProvider(api, maxRetries: 3) { e in
            let type = status == 529 ? "overloaded_error" : status == 504 ? "timeout_error" : "api_error"
            for _ in 0..<4 { e.emulator.enqueue(.error(status: status, type: type, message: "try later")) }

            let reply = await collect(e.client)

            #expect(e.emulator.requests.count == 4)
            #expect(reply.providerError?.status == status)
            #expect(reply.providerError?.kind == (status == 529 ? .overloaded : status == 504 ? .timeout : .upstream))
            let waits = e.sleeps.all
            #expect(waits.count == 3)
            #expect(waits[0] >= .milliseconds(375) && waits[0] <= .milliseconds(500))
            #expect(waits[1] >= .milliseconds(750) && waits[1] <= .seconds(1))
            #expect(waits[2] >= .milliseconds(1500) && waits[2] <= .seconds(2))
        }
    }

    @Test("400, 401, 403 and 404 fail at once with the API's message", arguments: [
        (400, "invalid_request_error", ProviderError.Kind.invalidRequest),
        (401, "authentication_error", .authentication),
        (403, "permission_error", .permission),
        (404, "not_found_error", .notFound),
    ], WireAPI.allCases)
    func permanentErrors(_ error: (status: Int, type: String, kind: ProviderError.Kind), api: WireAPI) async throws {
        let (status, type, kind) = error
        try await withEmulatedProvider(api) { e in
            e.emulator.enqueue(.error(status: status, type: type, message: "explained by the API"))

            let reply = await collect(e.client)

            #expect(e.emulator.requests.count == 1)
            #expect(e.sleeps.all.isEmpty)
            #expect(reply.providerError?.kind == kind)
            #expect(reply.providerError?.message == "explained by the API")
            #expect(reply.providerError?.description.contains("HTTP \(status)") == true)
        }
    }

    @Test("a wrong API key is the API's 401", arguments: WireAPI.allCases)
    func wrongKey(api: WireAPI) async throws {
        let emulator = try await AnthropicEmulator.start()
        let client: any ModelProvider = api == .anthropic
            ? AnthropicClient(configuration: AnthropicConfiguration(apiKey: "wrong", baseURL: emulator.baseURL))
            : OpenAIClient(configuration: OpenAIConfiguration(baseURL: emulator.baseURL + "/v1", apiKey: "wrong"))
        let reply = await collect(client)
        #expect(reply.providerError?.kind == .authentication)
        try await client.shutdown()
        await emulator.shutdown()
    }

    @Test("an error event after text ends the reply without a retry, keeping every piece before it", arguments: [false, true], WireAPI.allCases)
    func errorEventAfterText(coalesced: Bool, api: WireAPI) async throws {
        try await withEmulatedProvider(api) { e in
            e.emulator.enqueue(.reply(Script.Reply(["Partial", " answer"], errorAfterChunks: "overloaded_error", coalesced: coalesced)))

            let reply = await collect(e.client)

            #expect(reply.text == "Partial answer")
            #expect(reply.providerError?.kind == .overloaded)
            // Anthropic reports the prompt's usage first; an OpenAI-compatible server only at the end.
            #expect(reply.providerError?.usage?.inputTokens == (api == .anthropic ? 21 : nil))
            #expect(e.emulator.requests.count == 1, "text was handed out: no retry")
            #expect(e.sleeps.all.isEmpty)
        }
    }

    @Test("an error event before any text is retried", arguments: [false, true], WireAPI.allCases)
    func errorEventBeforeText(coalesced: Bool, api: WireAPI) async throws {
        try await withEmulatedProvider(api) { e in
            e.emulator.enqueue(.reply(Script.Reply([], errorAfterChunks: "overloaded_error", coalesced: coalesced)), .reply(["Second", " try"]))

            let reply = await collect(e.client)

            #expect(reply.text == "Second try")
            #expect(e.emulator.requests.count == 2)
            #expect(e.sleeps.all.count == 1)
        }
    }

    @Test("a malformed event after text fails the reply, keeping the text before it", arguments: [false, true], WireAPI.allCases)
    func malformedEventAfterText(coalesced: Bool, api: WireAPI) async throws {
        try await withEmulatedProvider(api) { e in
            e.emulator.enqueue(.reply(Script.Reply(["Kept", " text"], coalesced: coalesced, malformedAfterChunks: true)))

            let reply = await collect(e.client)

            #expect(reply.text == "Kept text")
            #expect(reply.providerError?.kind == .upstream)
            #expect(e.emulator.requests.count == 1)
        }
    }

    @Test("a stream that ends before its end (message_stop, finish_reason) is an interrupted reply", arguments: [false, true], WireAPI.allCases)
    func abruptEnd(coalesced: Bool, api: WireAPI) async throws {
        try await withEmulatedProvider(api) { e in
            e.emulator.enqueue(.reply(Script.Reply(["Cut", " off"], endAbruptly: true, coalesced: coalesced)))
            let reply = await collect(e.client)
            #expect(reply.text == "Cut off")
            #expect(reply.providerError?.kind == .interrupted)
            #expect(e.emulator.requests.count == 1)
        }
    }

    @Test("a whole reply in one read is handed out piece by piece, finished", arguments: WireAPI.allCases)
    func coalescedReply(api: WireAPI) async throws {
        try await withEmulatedProvider(api) { e in
            e.emulator.enqueue(.reply(Script.Reply(["One", " read", " holds", " it all"], coalesced: true)))
            let reply = await collect(e.client)
            #expect(reply.pieces == ["One", " read", " holds", " it all"])
            #expect(reply.finished?.stopReason == "end_turn")
        }
    }

    @Test("an upstream that never answers times out on the clock, is retried, then fails as a timeout", arguments: WireAPI.allCases)
    func hangsBeforeHeaders(api: WireAPI) async throws {
        try await withEmulatedProvider(api, maxRetries: 1, firstByteTimeout: .seconds(30)) { e in
            e.emulator.enqueue(.hangBeforeHeaders, .hangBeforeHeaders)

            let reply = try await e.collectMovingClock(by: .seconds(30))

            #expect(reply.providerError?.kind == .timeout)
            #expect(reply.providerError?.message.contains("no response within") == true)
            #expect(e.emulator.requests.count == 2)
            #expect(e.sleeps.all.count == 1)
        }
    }

    @Test("an upstream that goes silent mid-reply fails after the idle timeout, keeping the text", arguments: [false, true], WireAPI.allCases)
    func hangsMidStream(coalesced: Bool, api: WireAPI) async throws {
        try await withEmulatedProvider(api, idleTimeout: .seconds(60)) { e in
            e.emulator.enqueue(.reply(Script.Reply(["Some", " text"], hangAfterChunks: true, coalesced: coalesced)))

            let reply = try await e.collectMovingClock(by: .seconds(60)) { $0 == "Some text" }

            #expect(reply.text == "Some text")
            #expect(reply.providerError?.kind == .timeout)
            #expect(reply.providerError?.message.contains("nothing received for") == true)
            #expect(e.emulator.requests.count == 1)
        }
    }

    @Test("a slow upstream that keeps sending is never timed out", arguments: WireAPI.allCases)
    func slowButAlive(api: WireAPI) async throws {
        try await withEmulatedProvider(api, idleTimeout: .seconds(60)) { e in
            e.emulator.enqueue(.reply(Script.Reply(["a", "b", "c", "d"], delay: .milliseconds(20))))
            let reply = await collect(e.client)
            #expect(reply.text == "abcd")
            #expect(reply.error == nil)
        }
    }

    @Test("nothing listening is a connection error, retried", arguments: WireAPI.allCases)
    func connectionRefused(api: WireAPI) async throws {
        let sleeps = RecordedSleeps()
        let settings = ClientSettings(retries: RetryPolicy(maxRetries: 2), connectTimeout: .seconds(10), clock: ManualClock(), sleep: sleeps.sleep)
        let client: any ModelProvider = api == .anthropic
            ? AnthropicClient(configuration: AnthropicConfiguration(
                apiKey: "k", baseURL: "http://127.0.0.1:9", retries: settings.retries, connectTimeout: settings.connectTimeout,
                clock: settings.clock, sleep: sleeps.sleep))
            : OpenAIClient(configuration: OpenAIConfiguration(baseURL: "http://127.0.0.1:9/v1", settings: settings))
        let reply = await collect(client)
        #expect(reply.providerError?.kind == .connection)
        #expect(sleeps.all.count == 2)
        try await client.shutdown()
    }

    @Test("cancelling the calling task stops the reply and closes the upstream request", arguments: WireAPI.allCases)
    func cancellation(api: WireAPI) async throws {
        try await withEmulatedProvider(api) { e in
            e.emulator.enqueue(.reply(Script.Reply(["one", " two", " three"], pauseAfter: 1)))
            let received = NIOLockedValueBox(0)
            let task = Task { await collect(e.client) { _ in received.withLockedValue { $0 += 1 } } }
            let deadline = ContinuousClock.now + .seconds(10)
            while received.withLockedValue({ $0 }) == 0 || e.emulator.pausedCount == 0 {
                try #require(ContinuousClock.now < deadline, "the reply did not start")
                try await Task.sleep(for: .milliseconds(10))
            }

            task.cancel()
            let reply = await task.value

            #expect(reply.text == "one")
            #expect(reply.error is CancellationError)
        }
    }

    @Test("retry waits: the provider's retry-after under a minute, else capped exponential backoff with jitter")
    func retryDelays() {
        let policy = RetryPolicy()
        #expect(policy.delay(beforeRetry: 1, retryAfter: .seconds(3)) == .seconds(3))
        #expect(policy.delay(beforeRetry: 1, retryAfter: .seconds(600)) <= .milliseconds(500), "absurd waits are ignored")
        for attempt in 1...10 {
            let wait = policy.delay(beforeRetry: attempt, retryAfter: nil)
            let full = min(Duration.milliseconds(500) * (1 << (attempt - 1)), .seconds(8))
            #expect(wait <= full && wait >= full * 0.75, "attempt \(attempt): \(wait)")
        }
    }

    @Test("what is retried: transient failures before the first text, up to the limit; never a refused request")
    func retryRule() {
        let policy = RetryPolicy(maxRetries: 2)
        let overloaded = ProviderError(.overloaded, "busy")
        #expect(policy.delay(after: overloaded, retry: 1, textHandedOut: false) != nil)
        #expect(policy.delay(after: overloaded, retry: 2, textHandedOut: false) != nil)
        #expect(policy.delay(after: overloaded, retry: 3, textHandedOut: false) == nil, "retries run out")
        #expect(policy.delay(after: overloaded, retry: 1, textHandedOut: true) == nil, "after text, never")
        for kind in [ProviderError.Kind.authentication, .permission, .notFound, .invalidRequest, .requestTooLarge] {
            #expect(policy.delay(after: ProviderError(kind, ""), retry: 1, textHandedOut: false) == nil, "\(kind)")
        }
    }

    @Test("retry-after-ms, retry-after in seconds, and as an HTTP date")
    func retryAfterHeaders() {
        #expect(RetryAfter.parse(["retry-after-ms": "250"]) == .milliseconds(250))
        #expect(RetryAfter.parse(["retry-after": "2"]) == .seconds(2))
        let soon = Date().addingTimeInterval(30)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        let wait = RetryAfter.parse(["retry-after": formatter.string(from: soon)])
        #expect(wait.map { $0 > .seconds(28) && $0 <= .seconds(30) } == true)
        #expect(RetryAfter.parse([:]) == nil)
    }
}

@Suite("Offline provider")
struct OfflineProviderTests {
    @Test("it streams a reply that says it is offline and quotes the user")
    func offlineReply() async {
        let provider = OfflineProvider(wordDelay: .zero)
        let reply = await collect(provider, ModelRequest(
            model: OfflineProvider.modelID, system: nil, messages: [ModelMessage(role: .user, content: "Hello!")], maxTokens: 100
        ))
        #expect(reply.error == nil)
        #expect(reply.pieces.count > 10)
        #expect(reply.text.hasPrefix("[Offline reply]"))
        #expect(reply.text.contains("“Hello!”"))
        #expect(reply.text.contains("ANTHROPIC_API_KEY"))
        #expect(reply.finished?.usage?.outputTokens == reply.pieces.count)
        #expect(reply.usages.last?.final == true, "usage is handed out as it streams too")
    }
}
