/// A request for one assistant reply.
public struct ModelRequest: Sendable, Equatable {
    public var model: String
    public var system: String?
    public var messages: [ModelMessage]
    public var maxTokens: Int

    public init(model: String, system: String?, messages: [ModelMessage], maxTokens: Int) {
        self.model = model
        self.system = system
        self.messages = messages
        self.maxTokens = maxTokens
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

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }
}

/// Token counts of a reply, as the provider reports them.
public struct ModelUsage: Sendable, Equatable {
    public var inputTokens: Int
    public var outputTokens: Int

    public init(inputTokens: Int = 0, outputTokens: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}

/// What a reply stream delivers, in order: text deltas, then once `finished`.
public enum ModelEvent: Sendable, Equatable {
    /// The next piece of the reply's text, relayed the moment it arrives.
    case text(String)
    /// The reply is over: why the model stopped (`end_turn`, `max_tokens`, …) and its usage.
    case finished(stopReason: String?, usage: ModelUsage)
}

/// A model the server may use.
public struct ModelInfo: Sendable, Equatable {
    public var id: String
    public var provider: String

    public init(id: String, provider: String) {
        self.id = id
        self.provider = provider
    }
}

/// A source of assistant replies: the Anthropic Messages API, or the offline stand-in.
public protocol ModelProvider: Sendable {
    /// The provider's name, as listed by `GET /api/models/`.
    var name: String { get }

    /// Starts a reply when iterated. Iteration throws ``ProviderError`` when the reply fails,
    /// and stops (throwing `CancellationError`) when the iterating task is cancelled.
    func streamReply(_ request: ModelRequest) -> ModelReplyStream

    /// Releases connections; called once when the server stops.
    func shutdown() async throws
}

extension ModelProvider {
    public func shutdown() async throws {}
}

/// The events of one reply, pulled one at a time: no buffer and no task between the upstream
/// connection and the code that iterates it.
public struct ModelReplyStream: AsyncSequence, Sendable {
    public typealias Element = ModelEvent

    private let makeIterator: @Sendable () -> AsyncIterator

    public init(_ makeIterator: @escaping @Sendable () -> AsyncIterator) {
        self.makeIterator = makeIterator
    }

    public func makeAsyncIterator() -> AsyncIterator { makeIterator() }

    public struct AsyncIterator: AsyncIteratorProtocol {
        private let produce: () async throws -> ModelEvent?

        public init(_ produce: @escaping () async throws -> ModelEvent?) {
            self.produce = produce
        }

        public mutating func next() async throws -> ModelEvent? {
            try await produce()
        }
    }
}
