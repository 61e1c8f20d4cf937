import Foundation

/// Reads the Messages API's stream events: text and thinking deltas as they come (thinking, with
/// its signature, as reasoning), usage and the stop reason on the way, the end at `message_stop`,
/// and `error` events as ``ProviderError``s; `tool_use` blocks, their input gathered from its
/// `input_json_delta` pieces, as whole ``ModelToolCall``s when each block stops. Event and delta
/// types it does not use are skipped, so new ones the API adds later do no harm.
public struct AnthropicEvents: WireReader {
    /// Usage as reported so far (`message_start`, then cumulative in `message_delta`).
    private(set) var usage = ModelUsage()
    private(set) var stopReason: String?
    /// `tool_use` blocks begun and not yet stopped, by index.
    private var toolBlocks: [Int: ToolCallBuilder] = [:]
    private var toolCallCount = 0

    public init() {}

    private static let contentBlockDelta = Array("content_block_delta".utf8)
    private static let messageStart = Array("message_start".utf8)
    private static let messageDelta = Array("message_delta".utf8)
    private static let messageStop = Array("message_stop".utf8)
    private static let error = Array("error".utf8)
    private static let contentBlockStart = Array("content_block_start".utf8)
    private static let contentBlockStop = Array("content_block_stop".utf8)

    public mutating func read(_ event: ServerSentEventParser.RawEvent,
                              emit: (ModelStreamEvent) -> Void) throws(ProviderError) -> ModelCompletion? {
        let type = event.type
        if type.elementsEqual(Self.contentBlockDelta) {
            // The one event that comes once per token: scanned without the JSON decoder when it can be.
            if let scanned = TextDeltaScanner.scan(event.data), scanned.type == "text_delta" {
                if let text = scanned.text, !text.isEmpty { emit(.text(text)) }
                return nil
            }
            let parsed = try parse(BlockDeltaEvent.self, event)
            let delta = parsed.delta
            switch delta.type {
            case "text_delta": if let text = delta.text, !text.isEmpty { emit(.text(text)) }
            case "thinking_delta": if let thinking = delta.thinking, !thinking.isEmpty { emit(.reasoning(thinking)) }
            case "signature_delta": if let signature = delta.signature, !signature.isEmpty { emit(.reasoningSignature(signature)) }
            case "input_json_delta":
                guard let index = parsed.index, let piece = delta.partial_json else { break }
                guard toolBlocks[index]?.append(piece) != false else {
                    throw ProviderError(.upstream, "a tool call's arguments grew past \(ToolCallBuilder.maxArgumentBytes) bytes", usage: usage)
                }
            default: break
            }
            return nil
        }
        if type.elementsEqual(Self.contentBlockStart) {
            let start = try parse(BlockStartEvent.self, event)
            if start.content_block.type == "tool_use", let id = start.content_block.id, let name = start.content_block.name {
                toolCallCount += 1
                guard toolCallCount <= ToolCallBuilder.maxCallsPerTurn else {
                    throw ProviderError(.upstream, "the model made more than \(ToolCallBuilder.maxCallsPerTurn) tool calls at once", usage: usage)
                }
                toolBlocks[start.index] = ToolCallBuilder(id: id, name: name)
            }
            return nil
        }
        if type.elementsEqual(Self.contentBlockStop) {
            guard !toolBlocks.isEmpty, let index = try parse(BlockStopEvent.self, event).index,
                  let block = toolBlocks.removeValue(forKey: index) else { return nil }
            emit(.toolCall(block.call))
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
        return nil  // ping, and types added after this was written
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
            var partial_json: String?
        }
        var index: Int?
        var delta: Delta
    }

    private struct BlockStartEvent: Decodable {
        struct Block: Decodable {
            var type: String
            var id: String?
            var name: String?
        }
        var index: Int
        var content_block: Block
    }

    private struct BlockStopEvent: Decodable {
        var index: Int?
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
