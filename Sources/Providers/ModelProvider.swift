import Foundation
import NIOConcurrencyHelpers

/// A request for one assistant reply.
public struct ModelRequest: Sendable, Equatable {
    public var model: String
    /// The system prompt; nil or empty for none.
    public var system: String?
    public var messages: [ModelMessage]
    public var maxTokens: Int
    /// Ask the provider to cache the prompt up to the last message marked ``ModelMessage/cacheBreakpoint``
    /// (and the system prompt), so that a long conversation's repeated start is read from its cache.
    public var cachesPrompt: Bool
    /// Tokens the model may think for before it answers (Anthropic's extended thinking); nil: none.
    public var thinkingBudget: Int?
    /// The tools the model may call (none: the request declares none).
    public var tools: [ModelTool]
    /// Whether it may call them now.
    public var toolChoice: ModelToolChoice
    /// Sampling temperature as the provider takes it (nil: the provider's default).
    public var temperature: Double?
    /// Text that ends the reply where the model writes it (none: none).
    public var stopSequences: [String]
    /// The instances a relayed request passed through before this one (``RelayHeader``), sent on
    /// with this server's own, so that a loop of any length is refused where it closes.
    public var relayedBy: [String]

    public init(model: String, system: String?, messages: [ModelMessage], maxTokens: Int, cachesPrompt: Bool = false,
                thinkingBudget: Int? = nil, tools: [ModelTool] = [], toolChoice: ModelToolChoice = .auto,
                temperature: Double? = nil, stopSequences: [String] = [], relayedBy: [String] = []) {
        self.model = model
        self.system = system
        self.messages = messages
        self.maxTokens = maxTokens
        self.cachesPrompt = cachesPrompt
        self.thinkingBudget = thinkingBudget
        self.tools = tools
        self.toolChoice = toolChoice
        self.temperature = temperature
        self.stopSequences = stopSequences
        self.relayedBy = relayedBy
    }
}

/// One turn of the conversation sent to the model.
public struct ModelMessage: Sendable, Equatable {
    public enum Role: String, Sendable {
        case user
        case assistant
    }

    public var role: Role
    public var content: String
    /// Files the user attached, sent before the text, in the provider's own form.
    public var attachments: [ModelAttachment]
    /// The prompt up to and including this message is the same in the next request (a cache
    /// breakpoint, when the request ``ModelRequest/cachesPrompt``).
    public var cacheBreakpoint: Bool
    /// An assistant turn of a tool loop: the calls it made, after its text.
    public var toolCalls: [ModelToolCall]
    /// A user turn of a tool loop: the results of the calls of the turn before (and no text).
    public var toolResults: [ModelToolResult]
    /// An assistant turn of a tool loop: the reasoning that led to its calls, with its signature
    /// (Anthropic wants a signed thinking block back before the calls it led to).
    public var reasoning: String?
    public var reasoningSignature: String?

    public init(role: Role, content: String, attachments: [ModelAttachment] = [], cacheBreakpoint: Bool = false,
                toolCalls: [ModelToolCall] = [], toolResults: [ModelToolResult] = [], reasoning: String? = nil,
                reasoningSignature: String? = nil) {
        self.role = role
        self.content = content
        self.attachments = attachments
        self.cacheBreakpoint = cacheBreakpoint
        self.toolCalls = toolCalls
        self.toolResults = toolResults
        self.reasoning = reasoning
        self.reasoningSignature = reasoningSignature
    }
}

/// A file as the model receives it. Which form a file takes is decided before the request, from
/// the model's capabilities: an image only for a model with vision, a PDF as a document only for
/// one that reads documents (else its extracted text).
public enum ModelAttachment: Sendable, Equatable {
    /// An image (PNG, JPEG, GIF or WebP): Anthropic's image block, OpenAI's `image_url` data URL.
    case image(mediaType: String, data: Data)
    /// A PDF: Anthropic's document block, OpenAI's `file` part.
    case pdf(name: String, data: Data)
    /// A text file, or the text of a PDF, as text headed by the file's name.
    case text(name: String, text: String)

    /// The text part of a ``text(name:text:)`` attachment.
    public static func textPart(name: String, text: String) -> String {
        "Attached file \"\(name)\":\n\n\(text)"
    }
}

/// Token counts of a reply, as the provider reports them: input read plainly, from the prompt
/// cache, and written to it, apart; and output.
public struct ModelUsage: Sendable, Equatable {
    public var inputTokens: Int
    public var outputTokens: Int
    public var cacheReadInputTokens: Int
    public var cacheCreationInputTokens: Int

    public init(inputTokens: Int = 0, outputTokens: Int = 0, cacheReadInputTokens: Int = 0, cacheCreationInputTokens: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheReadInputTokens = cacheReadInputTokens
        self.cacheCreationInputTokens = cacheCreationInputTokens
    }

    /// Every token the reply consumed, of every kind.
    public var total: Int { inputTokens + outputTokens + cacheReadInputTokens + cacheCreationInputTokens }
}

/// How a reply finished: why the model stopped (`end_turn`, `max_tokens`, …) and its usage, when
/// the provider reported it (some OpenAI-compatible servers never do).
public struct ModelCompletion: Sendable, Equatable {
    public var stopReason: String?
    public var usage: ModelUsage?

    public init(stopReason: String?, usage: ModelUsage?) {
        self.stopReason = stopReason
        self.usage = usage
    }
}

/// What a provider hands out while a reply streams.
public enum ModelStreamEvent: Sendable, Equatable {
    /// The next piece of the answer.
    case text(String)
    /// The next piece of the model's reasoning (extended thinking, `reasoning_content`, a leading
    /// `<think>` block): kept apart from the answer, never sent back to the model as answer text.
    case reasoning(String)
    /// The signature of the reasoning so far (Anthropic's, which a later request must send back
    /// with the thinking it signs).
    case reasoningSignature(String)
    /// Token counts as the provider reported them so far (each replaces the last); `final` once the
    /// output count is the reply's whole (until then it may be a placeholder).
    case usage(ModelUsage, final: Bool)
    /// A call of a declared tool, whole (its arguments arrive in pieces; this comes once they are
    /// complete and parsed as a JSON object).
    case toolCall(ModelToolCall)
}

/// A source of assistant replies: a provider's API (``StreamingClient``), or the offline stand-in.
public protocol ModelProvider: Sendable {
    /// The provider's name, as listed by `GET /api/models/`.
    var name: String { get }

    /// Runs one reply: hands each event to `onEvent` the moment it is parsed (in order, on the
    /// thread that read it — the connection's event loop — never two at once), and answers how it
    /// finished.
    ///
    /// Throws ``ProviderError`` when the reply fails — every event parsed before the failure has
    /// been handed out by then — and `CancellationError` when the calling task is cancelled, which
    /// also closes the upstream request.
    func streamReply(_ request: ModelRequest, onEvent: @escaping @Sendable (ModelStreamEvent) -> Void) async throws -> ModelCompletion

    /// As ``streamReply(_:onEvent:)``, telling `onRetry` before each retry of a failed attempt:
    /// its number (1 for the first), the failure that caused it, and the wait before it.
    func streamReply(_ request: ModelRequest, onRetry: @escaping @Sendable (_ retry: Int, _ error: ProviderError, _ wait: Duration) -> Void,
                     onEvent: @escaping @Sendable (ModelStreamEvent) -> Void) async throws -> ModelCompletion

    /// The ids of the models the provider offers, as it lists them (within `timeout`).
    func listModels(timeout: Duration) async throws -> [String]

    /// Releases connections; called once when the server stops.
    func shutdown() async throws
}

extension ModelProvider {
    public func shutdown() async throws {}

    /// A provider that never retries has nothing to tell.
    public func streamReply(_ request: ModelRequest, onRetry: @escaping @Sendable (_ retry: Int, _ error: ProviderError, _ wait: Duration) -> Void,
                            onEvent: @escaping @Sendable (ModelStreamEvent) -> Void) async throws -> ModelCompletion {
        try await streamReply(request, onEvent: onEvent)
    }

    /// The whole text of a short reply to `request` (a title, say), and how it finished.
    public func text(of request: ModelRequest,
                     onRetry: @escaping @Sendable (_ retry: Int, _ error: ProviderError, _ wait: Duration) -> Void = { _, _, _ in })
        async throws -> (text: String, completion: ModelCompletion) {
        let text = CollectedText()
        let completion = try await streamReply(request, onRetry: onRetry) { event in
            if case .text(let piece) = event { text.append(piece) }
        }
        return (text.value, completion)
    }
}

/// Text as it arrives (pieces come one at a time, from any thread).
private final class CollectedText: Sendable {
    private let text = NIOLockedValueBox("")

    func append(_ piece: String) { text.withLockedValue { $0 += piece } }
    var value: String { text.withLockedValue { $0 } }
}
