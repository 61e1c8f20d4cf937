import AnthropicEmulator
import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import Providers

/// What a reply delivered: its text pieces, how it finished, or how it failed.
struct CollectedReply {
    var pieces: [String] = []
    /// The reasoning pieces, in order, and its signature.
    var reasoning: [String] = []
    var signature = ""
    /// The usage events, in order.
    var usages: [(usage: ModelUsage, final: Bool)] = []
    /// The tool calls, in order.
    var toolCalls: [ModelToolCall] = []
    var finished: ModelCompletion?
    var error: (any Error)?

    var text: String { pieces.joined() }
    var providerError: ProviderError? { error as? ProviderError }
}

/// Runs one reply to its end, keeping what it handed out.
func collect(_ provider: any ModelProvider, _ request: ModelRequest = sampleRequest,
             onText: @escaping @Sendable (String) -> Void = { _ in }) async -> CollectedReply {
    let pieces = NIOLockedValueBox<[String]>([])
    let usages = NIOLockedValueBox<[(usage: ModelUsage, final: Bool)]>([])
    let reasoning = NIOLockedValueBox<([String], String)>(([], ""))
    let calls = NIOLockedValueBox<[ModelToolCall]>([])
    var reply = CollectedReply()
    do {
        reply.finished = try await provider.streamReply(request) { event in
            switch event {
            case .text(let piece):
                pieces.withLockedValue { $0.append(piece) }
                onText(piece)
            case .usage(let usage, let final):
                usages.withLockedValue { $0.append((usage, final)) }
            case .reasoning(let piece):
                reasoning.withLockedValue { $0.0.append(piece) }
            case .reasoningSignature(let signature):
                reasoning.withLockedValue { $0.1 += signature }
            case .toolCall(let call):
                calls.withLockedValue { $0.append(call) }
            }
        }
    } catch {
        reply.error = error
    }
    reply.pieces = pieces.withLockedValue { $0 }
    reply.usages = usages.withLockedValue { $0 }
    (reply.reasoning, reply.signature) = reasoning.withLockedValue { $0 }
    reply.toolCalls = calls.withLockedValue { $0 }
    return reply
}

let sampleRequest = ModelRequest(
    model: "claude-sonnet-5-5", system: "Be brief.",
    messages: [ModelMessage(role: .user, content: "Hello"), ModelMessage(role: .assistant, content: "Hi!"),
               ModelMessage(role: .user, content: "How are you?")],
    maxTokens: 256
)

/// The wire formats the emulator speaks; the streaming client's guarantees hold on each.
enum WireAPI: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case anthropic, openai
    var testDescription: String { self == .anthropic ? "Anthropic Messages" : "OpenAI Chat Completions" }
}

/// An emulator, a client pointed at it whose timeouts run on a manual clock, and the retry waits it asked for.
struct EmulatedProvider {
    let emulator: AnthropicEmulator
    let client: any ModelProvider
    /// Requests the client has sent so far.
    let requestsSent: @Sendable () -> Int
    let clock: ManualClock
    let sleeps: RecordedSleeps

    /// Runs a reply, moving the clock on by `step` whenever the watchdog sleeps on it and `ready`
    /// holds for the text received so far, until the reply ends. A timeout thus fires only once
    /// everything the test waits for has arrived, however slow the machine.
    func collectMovingClock(by step: Duration, when ready: @escaping @Sendable (_ text: String) -> Bool = { _ in true }) async throws -> CollectedReply {
        let text = NIOLockedValueBox("")
        let finished = NIOLockedValueBox(false)
        let reply = Task { [client] in
            defer { finished.withLockedValue { $0 = true } }
            return await collect(client) { piece in text.withLockedValue { $0 += piece } }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while !finished.withLockedValue({ $0 }) {
            guard ContinuousClock.now < deadline else {
                reply.cancel()
                throw ReplyDidNotEnd()
            }
            // Every request the client sent has reached the emulator and gone silent, and the client has what it must.
            let allSilent = emulator.silentCount > 0 && emulator.silentCount == emulator.requests.count
                && emulator.requests.count == requestsSent()
            if allSilent, ready(text.withLockedValue { $0 }), clock.sleeperCount > 0 { clock.advance(by: step) }
            try await Task.sleep(for: .milliseconds(5))
        }
        return await reply.value
    }
}

/// Runs `body` with an emulator and a client of `api` pointed at it, both shut down afterwards.
func withEmulatedProvider(
    _ api: WireAPI = .anthropic,
    authScheme: AnthropicConfiguration.AuthScheme = .apiKeyHeader,
    maxRetries: Int = 2,
    firstByteTimeout: Duration = .seconds(5),
    idleTimeout: Duration = .seconds(5),
    _ body: (EmulatedProvider) async throws -> Void
) async throws {
    let emulator = try await AnthropicEmulator.start()
    let sleeps = RecordedSleeps()
    let clock = ManualClock()
    let settings = ClientSettings(retries: RetryPolicy(maxRetries: maxRetries), firstByteTimeout: firstByteTimeout, idleTimeout: idleTimeout,
                                  clock: clock, sleep: sleeps.sleep)
    let client: any ModelProvider
    let requestsSent: @Sendable () -> Int
    switch api {
    case .anthropic:
        let anthropic = AnthropicClient(configuration: AnthropicConfiguration(
            apiKey: emulator.apiKey, baseURL: emulator.baseURL, authScheme: authScheme, retries: settings.retries,
            firstByteTimeout: firstByteTimeout, idleTimeout: idleTimeout, clock: clock, sleep: sleeps.sleep
        ))
        (client, requestsSent) = (anthropic, { anthropic.requestsSent })
    case .openai:
        let openAI = OpenAIClient(configuration: OpenAIConfiguration(baseURL: emulator.baseURL + "/v1", apiKey: emulator.apiKey, settings: settings))
        (client, requestsSent) = (openAI, { openAI.requestsSent })
    }
    do {
        try await body(EmulatedProvider(emulator: emulator, client: client, requestsSent: requestsSent, clock: clock, sleeps: sleeps))
    } catch {
        try? await client.shutdown()
        await emulator.shutdown()
        throw error
    }
    try await client.shutdown()
    await emulator.shutdown()
}

/// A reply under test did not end in time.
struct ReplyDidNotEnd: Error {}
