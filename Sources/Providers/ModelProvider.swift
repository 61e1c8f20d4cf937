import Foundation

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

    public init(model: String, system: String?, messages: [ModelMessage], maxTokens: Int, cachesPrompt: Bool = false) {
        self.model = model
        self.system = system
        self.messages = messages
        self.maxTokens = maxTokens
        self.cachesPrompt = cachesPrompt
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
    /// The prompt up to and including this message is the same in the next request (a cache
    /// breakpoint, when the request ``ModelRequest/cachesPrompt``).
    public var cacheBreakpoint: Bool

    public init(role: Role, content: String, cacheBreakpoint: Bool = false) {
        self.role = role
        self.content = content
        self.cacheBreakpoint = cacheBreakpoint
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

/// How a reply finished: why the model stopped (`end_turn`, `max_tokens`, …) and its usage.
public struct ModelCompletion: Sendable, Equatable {
    public var stopReason: String?
    public var usage: ModelUsage

    public init(stopReason: String?, usage: ModelUsage) {
        self.stopReason = stopReason
        self.usage = usage
    }
}

/// A source of assistant replies: the Anthropic Messages API, or the offline stand-in.
public protocol ModelProvider: Sendable {
    /// The provider's name, as listed by `GET /api/models/`.
    var name: String { get }

    /// Runs one reply: hands each piece of its text to `onText` the moment it arrives (in order, on
    /// whatever thread received it, never two at once), and answers how it finished.
    ///
    /// Throws ``ProviderError`` when the reply fails — every piece that arrived before the failure
    /// has been handed out by then — and `CancellationError` when the calling task is cancelled,
    /// which also closes the upstream request.
    func streamReply(_ request: ModelRequest, onText: @escaping @Sendable (String) -> Void) async throws -> ModelCompletion

    /// A few words naming the conversation that began with `question` → `answer`, from `model`
    /// (``ChatTitling``); nil when the answer holds none. Throws as ``streamReply(_:onText:)``.
    func title(question: String, answer: String, model: String) async throws -> String?

    /// Releases connections; called once when the server stops.
    func shutdown() async throws
}

extension ModelProvider {
    public func shutdown() async throws {}

    /// A short request to the model (``ChatTitling/request(question:answer:model:)``), its answer cleaned.
    public func title(question: String, answer: String, model: String) async throws -> String? {
        let text = TitleText()
        _ = try await streamReply(ChatTitling.request(question: question, answer: answer, model: model)) { text.append($0) }
        return ChatTitling.clean(text.value)
    }
}

/// A title's text as it arrives (pieces come one at a time, from any thread).
private final class TitleText: @unchecked Sendable {
    private var text = ""
    private let lock = NSLock()

    func append(_ piece: String) { lock.withLock { text += piece } }
    var value: String { lock.withLock { text } }
}
