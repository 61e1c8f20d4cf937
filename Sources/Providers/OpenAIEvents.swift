import Foundation

/// Reads the Chat Completions stream: `chat.completion.chunk` events, then `data: [DONE]`. The
/// answer is each chunk's `delta.content`; reasoning arrives three ways, all kept apart from it —
/// a `delta.reasoning_content` (vLLM, DeepSeek), a `delta.reasoning` (Ollama, OpenRouter), or a
/// leading `<think>…</think>` in the content (``ThinkSplitter``). Usage comes in a last chunk when
/// asked for (`include_usage`; some servers never send it). An `{"error": …}` chunk fails the reply.
/// Tool calls arrive in pieces by index (`delta.tool_calls`: the id and name first, the arguments'
/// JSON in parts); each goes out whole when the model finishes.
public struct OpenAIEvents: WireReader {
    private var splitter = ThinkSplitter()
    private var usage: ModelUsage?
    private var finishReason: String?
    /// Tool calls begun, by index.
    private var toolCalls: [Int: ToolCallBuilder] = [:]

    public init() {}

    private struct Chunk: Decodable {
        struct Choice: Decodable {
            struct Delta: Decodable {
                struct ToolCall: Decodable {
                    struct Function: Decodable {
                        var name: String?
                        var arguments: String?
                    }
                    var index: Int?
                    var id: String?
                    var function: Function?
                }
                var content: String?
                var reasoning_content: String?
                var reasoning: String?
                var tool_calls: [ToolCall]?
            }
            var delta: Delta?
            var finish_reason: String?
        }

        struct Usage: Decodable {
            struct PromptDetails: Decodable { var cached_tokens: Int? }
            var prompt_tokens: Int?
            var completion_tokens: Int?
            var prompt_tokens_details: PromptDetails?
        }

        struct ErrorDetail: Decodable {
            var message: String?
            var type: String?
        }

        var choices: [Choice]?
        var usage: Usage?
        var error: ErrorDetail?
    }

    private static let done = Array("[DONE]".utf8)

    public mutating func read(_ event: ServerSentEventParser.RawEvent,
                              emit: (ModelStreamEvent) -> Void) throws(ProviderError) -> ModelCompletion? {
        if event.data.elementsEqual(Self.done) {
            splitter.finish(emit: emit)
            emitToolCalls(emit)
            return ModelCompletion(stopReason: finishReason, usage: usage)
        }
        guard !event.data.isEmpty else { return nil }
        let chunk: Chunk
        do {
            chunk = try JSONDecoder().decode(Chunk.self, from: Data(event.data))
        } catch {
            throw ProviderError(.upstream, "malformed chunk in the reply stream", usage: usage)
        }
        if let error = chunk.error {
            throw ProviderError(OpenAIErrorBody.kind(errorType: error.type) ?? .upstream,
                                error.message ?? error.type ?? "the provider reported an error", usage: usage)
        }
        for choice in chunk.choices ?? [] {
            if let delta = choice.delta {
                if let reasoning = delta.reasoning_content ?? delta.reasoning, !reasoning.isEmpty { emit(.reasoning(reasoning)) }
                if let content = delta.content, !content.isEmpty { splitter.feed(content, emit: emit) }
                for (position, call) in (delta.tool_calls ?? []).enumerated() {
                    let index = call.index ?? position
                    if toolCalls[index] == nil {
                        guard toolCalls.count < ToolCallBuilder.maxCallsPerTurn else {
                            throw ProviderError(.upstream, "the model made more than \(ToolCallBuilder.maxCallsPerTurn) tool calls at once", usage: usage)
                        }
                        // A server that sends no id gets one: the call's results must name it.
                        toolCalls[index] = ToolCallBuilder(id: call.id ?? "call_\(index)", name: call.function?.name ?? "")
                    } else if let name = call.function?.name, toolCalls[index]?.name.isEmpty == true {
                        toolCalls[index]?.name = name
                    }
                    if let piece = call.function?.arguments, toolCalls[index]?.append(piece) == false {
                        throw ProviderError(.upstream, "a tool call's arguments grew past \(ToolCallBuilder.maxArgumentBytes) bytes", usage: usage)
                    }
                }
            }
            if let reason = choice.finish_reason { finishReason = Self.stopReason(reason) }
        }
        if let reported = chunk.usage {
            let cached = reported.prompt_tokens_details?.cached_tokens ?? 0
            let counted = ModelUsage(inputTokens: max(0, (reported.prompt_tokens ?? 0) - cached), outputTokens: reported.completion_tokens ?? 0,
                                     cacheReadInputTokens: cached)
            usage = counted
            emit(.usage(counted, final: true))
        }
        return nil
    }

    /// Some servers close the stream after the last chunk without `[DONE]`: once the model said it
    /// finished, that is a complete reply; before, the stream was cut short.
    public mutating func end(emit: (ModelStreamEvent) -> Void) -> Result<ModelCompletion, ProviderError> {
        guard finishReason != nil else {
            return .failure(ProviderError(.interrupted, "the stream ended before the model finished", usage: usage))
        }
        splitter.finish(emit: emit)
        emitToolCalls(emit)
        return .success(ModelCompletion(stopReason: finishReason, usage: usage))
    }

    /// The tool calls gathered, in their order, once (the model finished).
    private mutating func emitToolCalls(_ emit: (ModelStreamEvent) -> Void) {
        for index in toolCalls.keys.sorted() {
            if let call = toolCalls[index]?.call { emit(.toolCall(call)) }
        }
        toolCalls = [:]
    }

    /// OpenAI's finish reasons in the contract's words (Anthropic's): `stop` is `end_turn`, `length` is `max_tokens`.
    static func stopReason(_ reason: String) -> String {
        switch reason {
        case "stop": "end_turn"
        case "length": "max_tokens"
        case "tool_calls": "tool_use"
        default: reason
        }
    }
}

/// Splits a reply whose content begins with `<think>…</think>` (models that reason in their answer,
/// as DeepSeek-R1 and Qwen3 do through servers that do not separate it) into reasoning and answer,
/// as the pieces arrive: tags split across pieces are found, and only a leading block counts — a
/// `<think>` later in an answer is part of the answer.
struct ThinkSplitter {
    private enum Phase {
        /// Nothing but white space yet: a `<think>` may still open.
        case start
        case thinking
        /// Just after `</think>`: white space before the answer is dropped.
        case afterThinking
        case answer
    }

    private var phase = Phase.start
    /// What is held back while it may be (the start of) a tag.
    private var held = ""

    private static let open = "<think>"
    private static let close = "</think>"

    mutating func feed(_ piece: String, emit: (ModelStreamEvent) -> Void) {
        switch phase {
        case .answer:
            emit(.text(piece))
        case .start:
            held += piece
            let trimmed = held.drop { $0.isWhitespace }
            if trimmed.hasPrefix(Self.open) {
                let rest = String(trimmed.dropFirst(Self.open.count))
                held = ""
                phase = .thinking
                feed(rest, emit: emit)
            } else if !Self.open.hasPrefix(trimmed) {
                phase = .answer
                let text = held
                held = ""
                if !text.isEmpty { emit(.text(text)) }
            }
        case .thinking:
            held += piece
            if let range = held.range(of: Self.close) {
                let reasoning = String(held[..<range.lowerBound])
                let rest = String(held[range.upperBound...])
                held = ""
                if !reasoning.isEmpty { emit(.reasoning(reasoning)) }
                phase = .afterThinking
                feed(rest, emit: emit)
            } else {
                // Keep back what could be the start of `</think>`; hand out the rest.
                let keep = Self.partialSuffix(of: held, matching: Self.close)
                let out = String(held.dropLast(keep))
                held = String(held.suffix(keep))
                if !out.isEmpty { emit(.reasoning(out)) }
            }
        case .afterThinking:
            let rest = piece.drop { $0.isWhitespace }
            guard !rest.isEmpty else { return }
            phase = .answer
            emit(.text(String(rest)))
        }
    }

    /// The stream ended: whatever is held goes out as what it was.
    mutating func finish(emit: (ModelStreamEvent) -> Void) {
        defer { held = "" }
        guard !held.isEmpty else { return }
        switch phase {
        case .start, .answer: emit(.text(held))
        case .thinking: emit(.reasoning(held))
        case .afterThinking: break
        }
    }

    /// How many characters at the end of `text` are a proper prefix of `tag`.
    private static func partialSuffix(of text: String, matching tag: String) -> Int {
        for length in stride(from: min(tag.count - 1, text.count), to: 0, by: -1) where tag.hasPrefix(text.suffix(length)) {
            return length
        }
        return 0
    }
}
