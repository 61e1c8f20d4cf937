import Foundation
import Providers

/// The model provider: the Anthropic Messages API when `ANTHROPIC_API_KEY` is set, else offline.
public struct AnthropicSettings: Sendable {
    public var apiKey: String?
    public var baseURL: String
    public var authScheme: AnthropicConfiguration.AuthScheme
    public var version: String
    /// The model new chats use.
    public var defaultModel: String
    /// The models a chat may use (always including the default).
    public var models: [String]
    public var maxTokens: Int
    /// Tokens a model's context holds (its prompt and its reply together), by model; others get
    /// `defaultContextWindow`. A conversation longer than a model's window less `maxTokens` is sent
    /// without its oldest messages.
    public var contextWindows: [String: Int]
    public var defaultContextWindow: Int
    /// Mark the system prompt and the stable start of a long conversation for the provider's
    /// prompt cache, so that each reply re-reads it at the cache rate.
    public var promptCaching: Bool
    public var maxRetries: Int
    public var connectTimeout: Duration
    public var firstByteTimeout: Duration
    public var idleTimeout: Duration
    /// The pause between words of the offline provider's reply.
    public var offlineWordDelay: Duration
    /// The model that names chats made without a title (a cheap one will do); nil: the chat's own.
    public var titleModel: String?

    init(_ read: SettingsReader) throws(SettingsError) {
        apiKey = read.string("ANTHROPIC_API_KEY")
        baseURL = try read.httpURL("ANTHROPIC_BASE_URL", default: "https://api.anthropic.com")
        let scheme = read.string("ANTHROPIC_AUTH_SCHEME") ?? "x-api-key"
        guard let parsedScheme = AnthropicConfiguration.AuthScheme(rawValue: scheme.lowercased()) else {
            throw SettingsError(key: "ANTHROPIC_AUTH_SCHEME", problem: "expected x-api-key or bearer, got '\(scheme)'")
        }
        authScheme = parsedScheme
        version = read.string("ANTHROPIC_VERSION") ?? "2023-06-01"
        defaultModel = read.string("ANTHROPIC_MODEL") ?? "claude-sonnet-5-5"
        var models = read.list("ANTHROPIC_MODELS", default: [])
        if !models.contains(defaultModel) { models.insert(defaultModel, at: 0) }
        self.models = models
        maxTokens = try read.int("ANTHROPIC_MAX_TOKENS", default: 4096, in: 1...1_000_000)
        defaultContextWindow = try read.int("ANTHROPIC_CONTEXT_WINDOW", default: 200_000, in: 1_000...100_000_000)
        var windows: [String: Int] = [:]
        for entry in read.list("ANTHROPIC_CONTEXT_WINDOWS", default: []) {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, let tokens = Int(parts[1]), tokens >= 1_000 else {
                throw SettingsError(key: "ANTHROPIC_CONTEXT_WINDOWS", problem: "expected model=tokens pairs such as claude-haiku-5=200000, got '\(entry)'")
            }
            windows[parts[0]] = tokens
        }
        contextWindows = windows
        for window in [defaultContextWindow] + windows.values where window <= maxTokens {
            throw SettingsError(key: "ANTHROPIC_MAX_TOKENS", problem: "must be smaller than every context window (one is \(window) tokens)")
        }
        promptCaching = try read.bool("ANTHROPIC_PROMPT_CACHING", default: true)
        maxRetries = try read.int("ANTHROPIC_MAX_RETRIES", default: 2, in: 0...10)
        connectTimeout = try read.duration("ANTHROPIC_CONNECT_TIMEOUT", default: .seconds(10))
        firstByteTimeout = try read.duration("ANTHROPIC_FIRST_BYTE_TIMEOUT", default: .seconds(60))
        idleTimeout = try read.duration("ANTHROPIC_IDLE_TIMEOUT", default: .seconds(60))
        offlineWordDelay = try read.duration("OFFLINE_WORD_DELAY", default: .milliseconds(40), allowZero: true)
        titleModel = read.string("TITLE_MODEL")
    }
}

/// Limits and timings of chats, replies and their streams.
public struct ChatSettings: Sendable {
    /// How replies' events reach streams on other instances.
    public enum EventBus: String, Sendable {
        /// PostgreSQL `LISTEN/NOTIFY` when the database is PostgreSQL, else this process only.
        case auto
        /// This process only (one instance, or chats pinned to instances).
        case local
        /// PostgreSQL `LISTEN/NOTIFY` (needs a PostgreSQL database).
        case postgres
    }

    public var eventBus: EventBus
    /// The longest message a user may send.
    public var messageLimit: TextLimit
    /// The longest system prompt.
    public var systemLimit: TextLimit
    /// The most messages one chat may hold (a send past it is 409).
    public var maxMessagesPerChat: Int
    /// Chats per page of `GET /api/chat/` when no `limit` is given, and the most a `limit` may ask for.
    public var defaultPageSize: Int
    public var maxPageSize: Int
    /// A comment goes out on an idle stream at least this often.
    public var keepAliveInterval: Duration
    /// Events a stream may have waiting for a slow reader before it is disconnected (it resumes by id).
    public var maxPendingEvents: Int
    /// How often a streaming reply's text is saved (which also proves its server is alive).
    public var checkpointInterval: Duration
    /// How long replies in flight may take to finish when the server stops.
    public var drainTimeout: Duration
    /// A reply whose server has not saved it (its heartbeat) for this long is taken to be lost:
    /// any instance marks it failed ("interrupted").
    public var replyLease: Duration

    init(_ read: SettingsReader) throws(SettingsError) {
        let bus = read.string("EVENT_BUS")?.lowercased() ?? "auto"
        guard let eventBus = EventBus(rawValue: bus) else {
            throw SettingsError(key: "EVENT_BUS", problem: "expected auto, local or postgres, got '\(bus)'")
        }
        self.eventBus = eventBus
        messageLimit = TextLimit(characters: try read.int("CHAT_MAX_MESSAGE_LENGTH", default: 32_000, in: 1...1_000_000))
        systemLimit = TextLimit(characters: try read.int("CHAT_MAX_SYSTEM_LENGTH", default: 20_000, in: 0...1_000_000))
        maxMessagesPerChat = try read.int("CHAT_MAX_MESSAGES", default: 10_000, in: 2...10_000_000)
        defaultPageSize = try read.int("CHAT_PAGE_SIZE", default: 20, in: 1...1000)
        maxPageSize = try read.int("CHAT_MAX_PAGE_SIZE", default: 100, in: 1...1000)
        guard defaultPageSize <= maxPageSize else {
            throw SettingsError(key: "CHAT_PAGE_SIZE", problem: "must not exceed CHAT_MAX_PAGE_SIZE (\(maxPageSize))")
        }
        keepAliveInterval = try read.duration("SSE_KEEPALIVE_INTERVAL", default: .seconds(15))
        maxPendingEvents = try read.int("SSE_MAX_PENDING_EVENTS", default: 1024, in: 8...1_000_000)
        checkpointInterval = try read.duration("REPLY_CHECKPOINT_INTERVAL", default: .seconds(5))
        drainTimeout = try read.duration("REPLY_DRAIN_TIMEOUT", default: .seconds(10), allowZero: true)
        replyLease = try read.duration("REPLY_LEASE", default: .seconds(30))
        guard replyLease >= checkpointInterval * 2 else {
            throw SettingsError(key: "REPLY_LEASE", problem: "must be at least twice REPLY_CHECKPOINT_INTERVAL, or live replies would be taken for lost")
        }
    }
}
