import AnthropicEmulator
import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import Providers

@Suite("Anthropic client")
struct AnthropicClientTests {
    @Test("a reply streams its deltas in order, then its stop reason and usage")
    func streamsReply() async throws {
        try await withEmulatedAnthropic { emulator, client, _ in
            emulator.enqueue(.reply(["Hel", "lo", ", wörld 👋", " \"quoted\"\n"]))

            let reply = await collect(client.streamReply(sampleRequest))

            #expect(reply.error == nil)
            #expect(reply.pieces == ["Hel", "lo", ", wörld 👋", " \"quoted\"\n"], "thinking deltas and unknown events are skipped")
            #expect(reply.finished?.stopReason == "end_turn")
            #expect(reply.finished?.usage == ModelUsage(inputTokens: 21, outputTokens: 4))
        }
    }

    @Test("the request carries the key, version, model, system prompt and conversation")
    func requestShape() async throws {
        try await withEmulatedAnthropic { emulator, client, _ in
            _ = await collect(client.streamReply(sampleRequest))

            let request = try #require(emulator.requests.first)
            #expect(request.headers["x-api-key"] == emulator.apiKey)
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
        try await withEmulatedAnthropic(authScheme: .bearer) { emulator, client, _ in
            let reply = await collect(client.streamReply(sampleRequest))
            #expect(reply.finished != nil)
            #expect(emulator.requests.first?.headers["authorization"] == "Bearer \(emulator.apiKey)")
            #expect(emulator.requests.first?.headers["x-api-key"] == nil)
        }
    }

    @Test("429 with retry-after is retried after the time asked, then succeeds")
    func rateLimitedThenSuccess() async throws {
        try await withEmulatedAnthropic { emulator, client, sleeps in
            emulator.enqueue(
                .error(status: 429, type: "rate_limit_error", message: "Number of requests has exceeded your rate limit", headers: ["retry-after": "7"]),
                .reply(["Fine", " now."])
            )

            let reply = await collect(client.streamReply(sampleRequest))

            #expect(reply.text == "Fine now.")
            #expect(emulator.requests.count == 2)
            #expect(sleeps.all == [.seconds(7)])
        }
    }

    @Test("500, 502, 503, 504 and 529 are retried with growing backoff until retries run out", arguments: [500, 502, 503, 504, 529])
    func transientStatusesExhaustRetries(status: Int) async throws {
        try await withEmulatedAnthropic(maxRetries: 3) { emulator, client, sleeps in
            let type = status == 529 ? "overloaded_error" : status == 504 ? "timeout_error" : "api_error"
            for _ in 0..<4 { emulator.enqueue(.error(status: status, type: type, message: "try later")) }

            let reply = await collect(client.streamReply(sampleRequest))

            #expect(emulator.requests.count == 4)
            #expect(reply.providerError?.status == status)
            #expect(reply.providerError?.kind == (status == 529 ? .overloaded : status == 504 ? .timeout : .upstream))
            let waits = sleeps.all
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
    ])
    func permanentErrors(status: Int, type: String, kind: ProviderError.Kind) async throws {
        try await withEmulatedAnthropic { emulator, client, sleeps in
            emulator.enqueue(.error(status: status, type: type, message: "explained by the API"))

            let reply = await collect(client.streamReply(sampleRequest))

            #expect(emulator.requests.count == 1)
            #expect(sleeps.all.isEmpty)
            #expect(reply.providerError?.kind == kind)
            #expect(reply.providerError?.message == "explained by the API")
            #expect(reply.providerError?.description.contains("HTTP \(status)") == true)
        }
    }

    @Test("a wrong API key is the API's 401")
    func wrongKey() async throws {
        let emulator = try await AnthropicEmulator.start()
        let client = AnthropicClient(configuration: AnthropicConfiguration(apiKey: "wrong", baseURL: emulator.baseURL))
        let reply = await collect(client.streamReply(sampleRequest))
        #expect(reply.providerError?.kind == .authentication)
        try await client.shutdown()
        await emulator.shutdown()
    }

    @Test("an error event after text ends the reply without a retry, keeping the text")
    func errorEventAfterText() async throws {
        try await withEmulatedAnthropic { emulator, client, sleeps in
            emulator.enqueue(.reply(Script.Reply(["Partial", " answer"], errorAfterChunks: "overloaded_error")))

            let reply = await collect(client.streamReply(sampleRequest))

            #expect(reply.text == "Partial answer")
            #expect(reply.providerError?.kind == .overloaded)
            #expect(reply.providerError?.usage?.inputTokens == 21)
            #expect(emulator.requests.count == 1)
            #expect(sleeps.all.isEmpty)
        }
    }

    @Test("an error event before any text is retried")
    func errorEventBeforeText() async throws {
        try await withEmulatedAnthropic { emulator, client, sleeps in
            emulator.enqueue(.reply(Script.Reply([], errorAfterChunks: "overloaded_error")), .reply(["Second", " try"]))

            let reply = await collect(client.streamReply(sampleRequest))

            #expect(reply.text == "Second try")
            #expect(emulator.requests.count == 2)
            #expect(sleeps.all.count == 1)
        }
    }

    @Test("a stream that ends without message_stop is an interrupted reply")
    func abruptEnd() async throws {
        try await withEmulatedAnthropic { emulator, client, _ in
            emulator.enqueue(.reply(Script.Reply(["Cut", " off"], endAbruptly: true)))
            let reply = await collect(client.streamReply(sampleRequest))
            #expect(reply.text == "Cut off")
            #expect(reply.providerError?.kind == .interrupted)
        }
    }

    @Test("an upstream that never answers times out, retried, then fails as a timeout")
    func hangsBeforeHeaders() async throws {
        try await withEmulatedAnthropic(maxRetries: 1, firstByteTimeout: .milliseconds(300)) { emulator, client, sleeps in
            emulator.enqueue(.hangBeforeHeaders, .hangBeforeHeaders)

            let reply = await collect(client.streamReply(sampleRequest))

            #expect(reply.providerError?.kind == .timeout)
            #expect(emulator.requests.count == 2)
            #expect(sleeps.all.count == 1)
        }
    }

    @Test("an upstream that goes silent mid-reply fails after the idle timeout, keeping the text")
    func hangsMidStream() async throws {
        try await withEmulatedAnthropic(idleTimeout: .seconds(1)) { emulator, client, _ in
            emulator.enqueue(.reply(Script.Reply(["Some", " text"], hangAfterChunks: true)))

            let reply = await collect(client.streamReply(sampleRequest))

            #expect(reply.text == "Some text")
            #expect(reply.providerError?.kind == .timeout)
            #expect(emulator.requests.count == 1)
        }
    }

    @Test("nothing listening is a connection error (after the connect timeout), retried")
    func connectionRefused() async throws {
        let sleeps = RecordedSleeps()
        let client = AnthropicClient(configuration: AnthropicConfiguration(
            apiKey: "k", baseURL: "http://127.0.0.1:9", maxRetries: 2, connectTimeout: .milliseconds(200), sleep: sleeps.sleep
        ))
        let reply = await collect(client.streamReply(sampleRequest))
        #expect(reply.providerError?.kind == .connection)
        #expect(sleeps.all.count == 2)
        try await client.shutdown()
    }

    @Test("cancelling the reading task stops the reply")
    func cancellation() async throws {
        try await withEmulatedAnthropic { emulator, client, _ in
            emulator.enqueue(.reply(Script.Reply(["one", " two", " three"], pauseAfter: 1)))
            let received = NIOLockedValueBox(0)
            let task = Task { await collect(client.streamReply(sampleRequest)) { _ in received.withLockedValue { $0 += 1 } } }
            while received.withLockedValue({ $0 }) == 0 || emulator.pausedCount == 0 { try await Task.sleep(for: .milliseconds(10)) }

            task.cancel()
            let reply = await task.value

            #expect(reply.text == "one")
            #expect(reply.error is CancellationError)
        }
    }

    @Test("retry waits: the provider's retry-after under a minute, else capped exponential backoff with jitter")
    func retryDelays() {
        let configuration = AnthropicConfiguration(apiKey: "k")
        #expect(configuration.delay(beforeRetry: 1, retryAfter: .seconds(3)) == .seconds(3))
        #expect(configuration.delay(beforeRetry: 1, retryAfter: .seconds(600)) <= .milliseconds(500), "absurd waits are ignored")
        for attempt in 1...10 {
            let wait = configuration.delay(beforeRetry: attempt, retryAfter: nil)
            let full = min(Duration.milliseconds(500) * (1 << (attempt - 1)), .seconds(8))
            #expect(wait <= full && wait >= full * 0.75, "attempt \(attempt): \(wait)")
        }
    }

    @Test("retry-after-ms, retry-after in seconds, and as an HTTP date")
    func retryAfterHeaders() {
        #expect(AnthropicReply.retryAfter(["retry-after-ms": "250"]) == .milliseconds(250))
        #expect(AnthropicReply.retryAfter(["retry-after": "2"]) == .seconds(2))
        let soon = Date().addingTimeInterval(30)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        let wait = AnthropicReply.retryAfter(["retry-after": formatter.string(from: soon)])
        #expect(wait.map { $0 > .seconds(28) && $0 <= .seconds(30) } == true)
        #expect(AnthropicReply.retryAfter([:]) == nil)
    }
}

@Suite("Offline provider")
struct OfflineProviderTests {
    @Test("it streams a reply that says it is offline and quotes the user")
    func offlineReply() async {
        let provider = OfflineProvider(wordDelay: .zero)
        let reply = await collect(provider.streamReply(ModelRequest(
            model: OfflineProvider.modelID, system: nil, messages: [ModelMessage(role: .user, content: "Hello!")], maxTokens: 100
        )))
        #expect(reply.error == nil)
        #expect(reply.pieces.count > 10)
        #expect(reply.text.hasPrefix("[Offline reply]"))
        #expect(reply.text.contains("“Hello!”"))
        #expect(reply.text.contains("ANTHROPIC_API_KEY"))
        #expect(reply.finished?.usage.outputTokens == reply.pieces.count)
    }
}
