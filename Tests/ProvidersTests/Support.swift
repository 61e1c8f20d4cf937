import AnthropicEmulator
import Foundation
import NIOConcurrencyHelpers
@testable import Providers

/// What a reply stream delivered: its text pieces, how it finished, or how it failed.
struct CollectedReply {
    var pieces: [String] = []
    var finished: (stopReason: String?, usage: ModelUsage)?
    var error: (any Error)?

    var text: String { pieces.joined() }
    var providerError: ProviderError? { error as? ProviderError }
}

func collect(_ stream: ModelReplyStream, onText: @Sendable (String) -> Void = { _ in }) async -> CollectedReply {
    var reply = CollectedReply()
    do {
        for try await event in stream {
            switch event {
            case .text(let piece):
                reply.pieces.append(piece)
                onText(piece)
            case .finished(let stopReason, let usage): reply.finished = (stopReason, usage)
            }
        }
    } catch {
        reply.error = error
    }
    return reply
}

/// Records the waits between retries instead of waiting.
final class RecordedSleeps: Sendable {
    private let waits = NIOLockedValueBox<[Duration]>([])
    var all: [Duration] { waits.withLockedValue { $0 } }
    var sleep: @Sendable (Duration) async throws -> Void {
        { [waits] duration in waits.withLockedValue { $0.append(duration) } }
    }
}

let sampleRequest = ModelRequest(
    model: "claude-sonnet-5-5", system: "Be brief.",
    messages: [ModelMessage(role: .user, content: "Hello"), ModelMessage(role: .assistant, content: "Hi!"),
               ModelMessage(role: .user, content: "How are you?")],
    maxTokens: 256
)

/// Runs `body` with an emulator and a client pointed at it, both shut down afterwards.
func withEmulatedAnthropic(
    authScheme: AnthropicConfiguration.AuthScheme = .apiKeyHeader,
    maxRetries: Int = 2,
    firstByteTimeout: Duration = .seconds(5),
    idleTimeout: Duration = .seconds(5),
    _ body: (AnthropicEmulator, AnthropicClient, RecordedSleeps) async throws -> Void
) async throws {
    let emulator = try await AnthropicEmulator.start()
    let sleeps = RecordedSleeps()
    let client = AnthropicClient(configuration: AnthropicConfiguration(
        apiKey: emulator.apiKey, baseURL: emulator.baseURL, authScheme: authScheme, maxRetries: maxRetries,
        firstByteTimeout: firstByteTimeout, idleTimeout: idleTimeout, sleep: sleeps.sleep
    ))
    do {
        try await body(emulator, client, sleeps)
    } catch {
        try? await client.shutdown()
        await emulator.shutdown()
        throw error
    }
    try await client.shutdown()
    await emulator.shutdown()
}
