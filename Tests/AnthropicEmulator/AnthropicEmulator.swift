import Foundation
import NIOConcurrencyHelpers
import Providers
import Vapor

/// An in-process stand-in for the Anthropic Messages API — and, from the same scripts, for the
/// OpenAI Chat Completions API (``AnthropicEmulator+OpenAI.swift``) — on a random loopback port. It
/// speaks each real wire format — the streaming event sequence, JSON error bodies with their
/// statuses, `retry-after`, the models list — checks the request as the API does, records every
/// request, and answers each from a script the test queues (an echo reply when none is queued). Requests for a chat's title
/// (the server's ``ChatTitling`` system prompt) have a queue and a record of their own, so that
/// titling never takes a script meant for a reply.
public final class AnthropicEmulator: Sendable {
    public let apiKey: String
    public let baseURL: String
    private let app: Application
    let state: NIOLockedValueBox<State>

    struct State {
        var scripts: [Script] = []
        var defaultScript: Script?
        var requests: [RecordedRequest] = []
        /// Keep what each request carried (off for load tests, which send thousands).
        var recordsRequests = true
        var gate = Gate()
        /// Replies that went silent (before their headers, or after their chunks), so far.
        var silent = 0
        /// Prompt prefixes written to the emulated prompt cache.
        var cachedPrefixes: Set<String> = []
        /// Title requests (``ChatTitling``) apart from the replies': their own queue and record.
        var titleScripts: [Script] = []
        var titleRequests: [RecordedRequest] = []
        /// What `GET /v1/models` lists; nil: it answers 404, as a server without a models list does.
        var models: [String]? = ["claude-sonnet-5-5", "claude-haiku-5", "gpt-emu", "reasoner"]
    }

    /// Starts an emulator that accepts `apiKey` (as `x-api-key` or `Authorization: Bearer`).
    public static func start(apiKey: String = "test-api-key") async throws -> AnthropicEmulator {
        let app = try await Application.make(.testing)
        app.logger.logLevel = .error
        app.http.server.configuration.hostname = "127.0.0.1"
        app.http.server.configuration.port = 0
        app.middleware = Middlewares()
        let state = NIOLockedValueBox(State())
        app.on(.POST, "v1", "messages", body: .collect(maxSize: "48mb")) { req in
            try await Self.handle(req, apiKey: apiKey, state: state)
        }
        app.on(.POST, "v1", "chat", "completions", body: .collect(maxSize: "48mb")) { req in
            try await Self.handleChatCompletion(req, apiKey: apiKey, state: state)
        }
        app.on(.GET, "v1", "models") { req in
            Self.listModels(req, apiKey: apiKey, state: state)
        }
        try await app.server.start(address: .hostname("127.0.0.1", port: 0))
        guard let port = app.http.server.shared.localAddress?.port else {
            await app.server.shutdown()
            try await app.asyncShutdown()
            throw Abort(.internalServerError, reason: "the emulator has no port")
        }
        return AnthropicEmulator(apiKey: apiKey, baseURL: "http://127.0.0.1:\(port)", app: app, state: state)
    }

    private init(apiKey: String, baseURL: String, app: Application, state: NIOLockedValueBox<State>) {
        self.apiKey = apiKey
        self.baseURL = baseURL
        self.app = app
        self.state = state
    }

    public func shutdown() async {
        openGate()
        releaseHangs()
        await app.server.shutdown()
        try? await app.asyncShutdown()
    }

    /// Queues answers for the next requests, in order.
    public func enqueue(_ scripts: Script...) {
        state.withLockedValue { $0.scripts.append(contentsOf: scripts) }
    }

    /// How to answer when no script is queued (an echo of the user's message unless set).
    public func setDefault(_ script: Script?) {
        state.withLockedValue { $0.defaultScript = script }
    }

    /// Every request for a reply received so far, in order (title requests are apart).
    public var requests: [RecordedRequest] {
        state.withLockedValue { $0.requests }
    }

    /// Queues answers for the next title requests (``ChatTitling``), in order; unqueued ones get
    /// "Emulated title".
    public func enqueueTitle(_ scripts: Script...) {
        state.withLockedValue { $0.titleScripts.append(contentsOf: scripts) }
    }

    /// Every title request received so far.
    public var titleRequests: [RecordedRequest] {
        state.withLockedValue { $0.titleRequests }
    }

    /// Sets what `GET /v1/models` lists; nil: it answers 404.
    public func setModels(_ models: [String]?) {
        state.withLockedValue { $0.models = models }
    }

    /// Stops keeping requests (load tests send thousands); they are still checked and answered.
    public func stopRecording() {
        state.withLockedValue { $0.recordsRequests = false }
    }

    /// Lets every reply paused at its `pauseAfter` go on, and any that pause later too.
    public func openGate() {
        let waiters = state.withLockedValue { state in
            state.gate.isOpen = true
            defer { state.gate.waiters.removeAll() }
            return state.gate.waiters
        }
        waiters.forEach { $0.resume() }
    }

    /// Closes the gate again, for the next paused reply.
    public func closeGate() {
        state.withLockedValue { $0.gate.isOpen = false }
    }

    /// How many replies are waiting at the gate.
    public var pausedCount: Int { state.withLockedValue { $0.gate.waiters.count } }

    /// How many replies have gone silent so far (hanging before their headers or after their chunks):
    /// a test waits for this before it moves a timeout's clock.
    public var silentCount: Int { state.withLockedValue { $0.silent } }

    private func releaseHangs() {
        let hangs = state.withLockedValue { state in
            defer { state.gate.hangs.removeAll() }
            return state.gate.hangs
        }
        hangs.forEach { $0.resume() }
    }
}

/// A request as the emulator received it.
public struct RecordedRequest: Sendable {
    public var headers: [String: String]
    public var model: String?
    public var system: String?
    public var maxTokens: Int?
    public var stream: Bool?
    /// (role, content) of each message, in order.
    public var messages: [(role: String, content: String)]
    /// Whether the system prompt carried `cache_control`.
    public var systemCached: Bool
    /// Anthropic: the extended thinking budget asked for; nil when none.
    public var thinkingBudget: Int? = nil
    /// OpenAI: whether usage was asked for (`stream_options.include_usage`).
    public var includeUsage: Bool? = nil
    /// Which API it came through: `anthropic` or `openai`.
    public var api = "anthropic"
    /// The indexes of the messages that carried `cache_control`.
    public var cacheBreakpoints: [Int]
    /// Each message's files (image and document blocks; `image_url` and `file` parts), in order.
    public var attachments: [[RecordedAttachment]] = []
    /// The names of the tools declared, in order.
    public var tools: [String] = []
    /// `tool_choice` as sent: Anthropic's `type`, or OpenAI's string; nil when absent.
    public var toolChoice: String?
    /// Every tool call in the messages (`tool_use` blocks; assistant `tool_calls`), in order.
    public var toolUses: [RecordedToolUse] = []
    /// Every tool result in the messages (`tool_result` blocks; `tool` messages), in order.
    public var toolResults: [RecordedToolResult] = []
    /// `temperature` as sent; nil when absent.
    public var temperature: Double?
    /// Anthropic's `stop_sequences`, OpenAI's `stop`: empty when absent.
    public var stop: [String] = []
}

/// A tool call as a request carried it back to the model.
public struct RecordedToolUse: Sendable, Equatable {
    public var id: String
    public var name: String
    /// Its input as JSON text (keys sorted).
    public var input: String

    public init(id: String, name: String, input: String) {
        (self.id, self.name, self.input) = (id, name, input)
    }
}

/// A tool result as a request carried it to the model.
public struct RecordedToolResult: Sendable, Equatable {
    public var id: String
    public var content: String
    public var isError: Bool

    public init(id: String, content: String, isError: Bool) {
        (self.id, self.content, self.isError) = (id, content, isError)
    }
}

/// A file as a provider received it.
public struct RecordedAttachment: Sendable, Equatable {
    /// `image` or `document` (Anthropic); `image_url` or `file` (OpenAI).
    public var kind: String
    public var mediaType: String
    public var data: Data
    /// A document's title, or a file part's name.
    public var name: String?

    public init(kind: String, mediaType: String, data: Data, name: String? = nil) {
        (self.kind, self.mediaType, self.data, self.name) = (kind, mediaType, data, name)
    }
}

/// Where paused and hanging replies wait.
struct Gate {
    var isOpen = false
    var waiters: [CheckedContinuation<Void, Never>] = []
    var hangs: [CheckedContinuation<Void, Never>] = []
}

/// How the emulator answers one request.
public enum Script: Sendable {
    /// A streamed reply.
    case reply(Reply)
    /// An error response: status, the API's error type and message, extra headers (e.g. retry-after).
    case error(status: Int, type: String, message: String, headers: [String: String] = [:])
    /// Never answers (until the emulator shuts down).
    case hangBeforeHeaders

    /// A streamed reply's behaviour.
    public struct Reply: Sendable {
        public var chunks: [String]
        /// Reasoning sent before the chunks (a thinking block; `reasoning_content` or a `<think>`
        /// block for OpenAI, as `reasoningStyle` says).
        public var reasoning: [String]
        /// Pause before each chunk after the first.
        public var delay: Duration
        /// After this many chunks, wait until the test opens the gate.
        public var pauseAfter: Int?
        public var stopReason: String
        public var inputTokens: Int
        /// After the chunks, send an `error` event of this type instead of finishing.
        public var errorAfterChunks: String?
        /// After the chunks, go silent (headers sent, connection open) until shut down.
        public var hangAfterChunks: Bool
        /// After the chunks, close the stream without `message_stop`.
        public var endAbruptly: Bool
        /// Include event and delta types a client must skip (thinking blocks, unknown events).
        public var includeUnusedEvents: Bool
        /// OpenAI: how the reasoning comes (Anthropic always sends a thinking block).
        public var reasoningStyle: ReasoningStyle = .reasoningContent
        /// OpenAI: send no usage even when asked (some servers never do).
        public var omitUsage = false
        /// OpenAI: how many of the prompt's tokens the server says came from its cache
        /// (`prompt_tokens_details.cached_tokens`, counted within `prompt_tokens`).
        public var cachedTokens = 0
        /// OpenAI: close the stream after the last chunk without `data: [DONE]` (as some servers do).
        public var omitDone = false
        /// OpenAI: after the chunks, a line of this many bytes that never ends (a misbehaving server).
        public var endlessLineBytes = 0
        /// Tool calls the model makes after its text (`tool_use` blocks; `delta.tool_calls`): the
        /// reply then stops for `tool_use`.
        public var toolCalls: [ScriptedToolCall] = []
        /// Replace each chunk's text with the wall-clock time it is sent, `t<nanoseconds since 1970>;`,
        /// so a client can measure how long the text took to reach it.
        public var stampChunks: Bool
        /// Send the whole event stream in one write (as a proxy or a fast link may deliver it), the
        /// chunks without their delays.
        public var coalesced: Bool
        /// After the chunks, send an event whose JSON is cut off, and close.
        public var malformedAfterChunks: Bool
        /// Send every chunk on a shared beat of `delay` (the next multiple of it since the emulator's
        /// process started) instead of `delay` after the previous one: every reply running at once
        /// sends its chunks at the same instants, the hardest case for a relay.
        public var phaseLocked: Bool

        public init(
            _ chunks: [String], delay: Duration = .zero, pauseAfter: Int? = nil, stopReason: String = "end_turn",
            inputTokens: Int = 21, errorAfterChunks: String? = nil, hangAfterChunks: Bool = false,
            endAbruptly: Bool = false, includeUnusedEvents: Bool = true, stampChunks: Bool = false,
            coalesced: Bool = false, malformedAfterChunks: Bool = false, phaseLocked: Bool = false, reasoning: [String] = []
        ) {
            self.chunks = chunks
            self.reasoning = reasoning
            self.delay = delay
            self.pauseAfter = pauseAfter
            self.stopReason = stopReason
            self.inputTokens = inputTokens
            self.errorAfterChunks = errorAfterChunks
            self.hangAfterChunks = hangAfterChunks
            self.endAbruptly = endAbruptly
            self.includeUnusedEvents = includeUnusedEvents
            self.stampChunks = stampChunks
            self.coalesced = coalesced
            self.malformedAfterChunks = malformedAfterChunks
            self.phaseLocked = phaseLocked
        }
    }

    /// A tool call a scripted reply makes: its id, the tool's name as declared, its arguments' JSON.
    public struct ScriptedToolCall: Sendable {
        public var id: String
        public var name: String
        public var arguments: String

        public init(id: String, name: String, arguments: String) {
            (self.id, self.name, self.arguments) = (id, name, arguments)
        }
    }

    /// A reply that says `text` (word by word), then calls `calls`.
    public static func calling(_ calls: [ScriptedToolCall], saying text: [String] = []) -> Script {
        var reply = Reply(text)
        reply.toolCalls = calls
        return .reply(reply)
    }

    /// How an OpenAI-compatible server sends reasoning.
    public enum ReasoningStyle: Sendable {
        /// `delta.reasoning_content` (vLLM, DeepSeek).
        case reasoningContent
        /// `delta.reasoning` (Ollama, OpenRouter).
        case reasoningField
        /// A leading `<think>…</think>` in the content.
        case think
    }

    public static func reply(_ chunks: [String], delay: Duration = .zero, pauseAfter: Int? = nil) -> Script {
        .reply(Reply(chunks, delay: delay, pauseAfter: pauseAfter))
    }
}
