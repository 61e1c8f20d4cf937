import Foundation

/// Reads the Messages API's stream events: text deltas as they come, usage and the stop reason on
/// the way, the end at `message_stop`, and `error` events as ``ProviderError``s. Event and delta
/// types it does not use are skipped, so new ones the API adds later (thinking, tool use, …) do no harm.
struct AnthropicEvents {
    /// Usage as reported so far (`message_start`, then cumulative in `message_delta`).
    private(set) var usage = ModelUsage()
    private(set) var stopReason: String?

    enum Outcome: Equatable {
        case text(String)
        /// Usage as reported so far; `final` once the output count is the reply's (`message_delta`).
        case usage(ModelUsage, final: Bool)
        case finished(ModelCompletion)
    }

    private static let contentBlockDelta = Array("content_block_delta".utf8)
    private static let messageStart = Array("message_start".utf8)
    private static let messageDelta = Array("message_delta".utf8)
    private static let messageStop = Array("message_stop".utf8)
    private static let error = Array("error".utf8)

    /// What `event` means for the reply; nil for events that carry nothing it uses.
    mutating func read(_ event: ServerSentEventParser.RawEvent) throws(ProviderError) -> Outcome? {
        let type = event.type
        if type.elementsEqual(Self.contentBlockDelta) {
            let delta: BlockDelta
            if let scanned = TextDeltaScanner.scan(event.data) {
                delta = scanned
            } else {
                delta = try parse(BlockDeltaEvent.self, event).delta
            }
            guard delta.type == "text_delta", let text = delta.text, !text.isEmpty else { return nil }
            return .text(text)
        }
        if type.elementsEqual(Self.messageStart) {
            guard let reported = try parse(MessageStart.self, event).message.usage else { return nil }
            reported.apply(to: &usage)
            return .usage(usage, final: false)
        }
        if type.elementsEqual(Self.messageDelta) {
            let delta = try parse(MessageDelta.self, event)
            stopReason = delta.delta?.stop_reason ?? stopReason
            guard let reported = delta.usage else { return nil }
            reported.apply(to: &usage)
            return .usage(usage, final: reported.output_tokens != nil)
        }
        if type.elementsEqual(Self.messageStop) {
            return .finished(ModelCompletion(stopReason: stopReason, usage: usage))
        }
        if type.elementsEqual(Self.error) {
            var error = AnthropicErrorBody.providerError(from: Data(event.data), status: nil)
            error.usage = usage
            throw error
        }
        return nil  // ping, content_block_start/stop, and types added after this was written
    }

    private func parse<T: Decodable>(_ type: T.Type, _ event: ServerSentEventParser.RawEvent) throws(ProviderError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(event.data))
        } catch {
            throw ProviderError(.upstream, "malformed \(String(decoding: event.type, as: UTF8.self)) event in the reply stream", usage: usage)
        }
    }

    private struct BlockDeltaEvent: Decodable {
        var delta: BlockDelta
    }

    /// A `usage` object; each count is present only when reported.
    private struct Usage: Decodable {
        var input_tokens: Int?
        var output_tokens: Int?
        var cache_read_input_tokens: Int?
        var cache_creation_input_tokens: Int?

        func apply(to usage: inout ModelUsage) {
            usage.inputTokens = input_tokens ?? usage.inputTokens
            usage.outputTokens = output_tokens ?? usage.outputTokens
            usage.cacheReadInputTokens = cache_read_input_tokens ?? usage.cacheReadInputTokens
            usage.cacheCreationInputTokens = cache_creation_input_tokens ?? usage.cacheCreationInputTokens
        }
    }

    private struct MessageStart: Decodable {
        struct Message: Decodable { var usage: Usage? }
        var message: Message
    }

    private struct MessageDelta: Decodable {
        struct Delta: Decodable { var stop_reason: String? }
        var delta: Delta?
        var usage: Usage?
    }
}
