import Foundation
import NIOCore
import Providers

/// The bytes of one completion's answers in OpenAI's format, written by hand into buffers: a
/// streamed piece costs its text's escaping and two copies of constant bytes, nothing else (no
/// `Codable`, no dictionaries, no intermediate `Data`).
struct CompletionChunks: Sendable {
    let id: String
    let created: Int
    let model: String
    let includeUsage: Bool
    /// `data: {"id":…,"object":"chat.completion.chunk",…,"choices":[{"index":0,"delta":{`.
    private let head: ByteBuffer
    /// `},"logprobs":null,"finish_reason":null}]…}` and a blank line.
    private let openTail: ByteBuffer

    init(model: String, created: Date, includeUsage: Bool) {
        id = "chatcmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        self.created = Int(created.timeIntervalSince1970)
        self.model = model
        self.includeUsage = includeUsage
        var head = ByteBuffer()
        head.writeStaticString("data: {\"id\":")
        head.writeJSONString(id)
        head.writeStaticString(",\"object\":\"chat.completion.chunk\",\"created\":")
        head.writeJSONInt(self.created)
        head.writeStaticString(",\"model\":")
        head.writeJSONString(model)
        head.writeStaticString(",\"choices\":[{\"index\":0,\"delta\":{")
        self.head = head
        var openTail = ByteBuffer()
        openTail.writeStaticString("},\"logprobs\":null,\"finish_reason\":null}]")
        if includeUsage { openTail.writeStaticString(",\"usage\":null") }
        openTail.writeStaticString("}\n\n")
        self.openTail = openTail
    }

    /// The first chunk: the assistant's role.
    func writeRole(into out: inout ByteBuffer) {
        var head = head
        out.writeBuffer(&head)
        out.writeStaticString("\"role\":\"assistant\",\"content\":\"\"")
        var tail = openTail
        out.writeBuffer(&tail)
    }

    /// A piece of the answer (`content`) or of the reasoning (`reasoning_content`, as DeepSeek and
    /// vLLM name it).
    func writePiece(_ text: String, reasoning: Bool, into out: inout ByteBuffer) {
        var head = head
        out.writeBuffer(&head)
        out.writeStaticString(reasoning ? "\"reasoning_content\":" : "\"content\":")
        out.writeJSONString(text)
        var tail = openTail
        out.writeBuffer(&tail)
    }

    /// The end: the finish reason, the usage when asked for, and `[DONE]`.
    func writeEnd(finishReason: String, usage: ModelUsage, into out: inout ByteBuffer) {
        var head = head
        out.writeBuffer(&head)
        out.writeStaticString("},\"logprobs\":null,\"finish_reason\":")
        out.writeJSONString(finishReason)
        out.writeStaticString("}]")
        if includeUsage { out.writeStaticString(",\"usage\":null") }
        out.writeStaticString("}\n\n")
        if includeUsage {
            out.writeStaticString("data: {\"id\":")
            out.writeJSONString(id)
            out.writeStaticString(",\"object\":\"chat.completion.chunk\",\"created\":")
            out.writeJSONInt(created)
            out.writeStaticString(",\"model\":")
            out.writeJSONString(model)
            out.writeStaticString(",\"choices\":[],\"usage\":")
            Self.writeUsage(usage, into: &out)
            out.writeStaticString("}\n\n")
        }
        out.writeStaticString("data: [DONE]\n\n")
    }

    /// A failure after the first chunk: `data: {"error": …}` and no `[DONE]`.
    static func writeError(_ error: OpenAIError, into out: inout ByteBuffer) {
        out.writeStaticString("data: ")
        error.writeJSON(into: &out)
        out.writeStaticString("\n\n")
    }

    /// A whole `chat.completion`.
    func completion(text: String, reasoning: String, finishReason: String, usage: ModelUsage) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: text.utf8.count + reasoning.utf8.count + 400)
        out.writeStaticString("{\"id\":")
        out.writeJSONString(id)
        out.writeStaticString(",\"object\":\"chat.completion\",\"created\":")
        out.writeJSONInt(created)
        out.writeStaticString(",\"model\":")
        out.writeJSONString(model)
        out.writeStaticString(",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":")
        out.writeJSONString(text)
        if !reasoning.isEmpty {
            out.writeStaticString(",\"reasoning_content\":")
            out.writeJSONString(reasoning)
        }
        out.writeStaticString(",\"refusal\":null},\"logprobs\":null,\"finish_reason\":")
        out.writeJSONString(finishReason)
        out.writeStaticString("}],\"usage\":")
        Self.writeUsage(usage, into: &out)
        out.writeStaticString("}")
        return out
    }

    /// OpenAI's usage: the prompt counts every input token, cached ones included (and says how
    /// many were read from the cache).
    static func writeUsage(_ usage: ModelUsage, into out: inout ByteBuffer) {
        let prompt = usage.inputTokens + usage.cacheReadInputTokens + usage.cacheCreationInputTokens
        out.writeStaticString("{\"prompt_tokens\":")
        out.writeJSONInt(prompt)
        out.writeStaticString(",\"completion_tokens\":")
        out.writeJSONInt(usage.outputTokens)
        out.writeStaticString(",\"total_tokens\":")
        out.writeJSONInt(prompt + usage.outputTokens)
        out.writeStaticString(",\"prompt_tokens_details\":{\"cached_tokens\":")
        out.writeJSONInt(usage.cacheReadInputTokens)
        out.writeStaticString("}}")
    }

    /// OpenAI's `finish_reason` for a provider's stop reason (Anthropic's translated).
    static func finishReason(_ stopReason: String?) -> String {
        switch stopReason {
        case "max_tokens", "length", "model_context_window_exceeded": "length"
        case "refusal", "content_filter": "content_filter"
        case "tool_use", "tool_calls": "tool_calls"
        default: "stop"
        }
    }
}
