import Foundation

/// Reads the Messages API's stream events: text and thinking deltas as they come (thinking, with
/// its signature, as reasoning), usage and the stop reason on the way, the end at `message_stop`,
/// and `error` events as ``ProviderError``s. Event and delta types it does not use are skipped, so
/// new ones the API adds later (tool use, …) do no harm.
public struct AnthropicEvents: WireReader {
    /// Usage as reported so far (`message_start`, then cumulative in `message_delta`).
    private(set) var usage = ModelUsage()
    private(set) var stopReason: String?

    public init() {}

    private static let contentBlockDelta = Array("content_block_delta".utf8)
    private static let messageStart = Array("message_start".utf8)
    private static let messageDelta = Array("message_delta".utf8)
    private static let messageStop = Array("message_stop".utf8)
    private static let error = Array("error".utf8)

    public mutating func read(_ event: ServerSentEventParser.RawEvent,
                              emit: (ModelStreamEvent) -> Void) throws(ProviderError) -> ModelCompletion? {
        let type = event.type
        if type.elementsEqual(Self.contentBlockDelta) {
            // The one event that comes once per token: scanned without the JSON decoder when it can be.
            if let scanned = TextDeltaScanner.scan(event.data), scanned.type == "text_delta" {
                if let text = scanned.text, !text.isEmpty { emit(.text(text)) }
                return nil
            }
            let delta = try parse(BlockDeltaEvent.self, event).delta
            switch delta.type {
            case "text_delta": if let text = delta.text, !text.isEmpty { emit(.text(text)) }
            case "thinking_delta": if let thinking = delta.thinking, !thinking.isEmpty { emit(.reasoning(thinking)) }
            case "signature_delta": if let signature = delta.signature, !signature.isEmpty { emit(.reasoningSignature(signature)) }
            default: break
            }
            return nil
        }
        if type.elementsEqual(Self.messageStart) {
            guard let reported = try parse(MessageStart.self, event).message.usage else { return nil }
            reported.apply(to: &usage)
            emit(.usage(usage, final: false))
            return nil
        }
        if type.elementsEqual(Self.messageDelta) {
            let delta = try parse(MessageDelta.self, event)
            stopReason = delta.delta?.stop_reason ?? stopReason
            guard let reported = delta.usage else { return nil }
            reported.apply(to: &usage)
            emit(.usage(usage, final: reported.output_tokens != nil))
            return nil
        }
        if type.elementsEqual(Self.messageStop) {
            return ModelCompletion(stopReason: stopReason, usage: usage)
        }
        if type.elementsEqual(Self.error) {
            var error = AnthropicErrorBody.providerError(from: Data(event.data), status: nil)
            error.usage = usage
            throw error
        }
        return nil  // ping, content_block_start/stop, and types added after this was written
    }

    public mutating func end(emit: (ModelStreamEvent) -> Void) -> Result<ModelCompletion, ProviderError> {
        .failure(ProviderError(.interrupted, "the stream ended before message_stop", usage: usage))
    }

    private func parse<T: Decodable>(_ type: T.Type, _ event: ServerSentEventParser.RawEvent) throws(ProviderError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(event.data))
        } catch {
            throw ProviderError(.upstream, "malformed \(String(decoding: event.type, as: UTF8.self)) event in the reply stream", usage: usage)
        }
    }

    private struct BlockDeltaEvent: Decodable {
        struct Delta: Decodable {
            var type: String
            var text: String?
            var thinking: String?
            var signature: String?
        }
        var delta: Delta
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
