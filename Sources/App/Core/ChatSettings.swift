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
    public var maxRetries: Int
    public var connectTimeout: TimeInterval
    public var firstByteTimeout: TimeInterval
    public var idleTimeout: TimeInterval
    /// The pause between words of the offline provider's reply.
    public var offlineWordDelay: TimeInterval

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
        maxRetries = try read.int("ANTHROPIC_MAX_RETRIES", default: 2, in: 0...10)
        connectTimeout = try read.duration("ANTHROPIC_CONNECT_TIMEOUT", default: 10)
        firstByteTimeout = try read.duration("ANTHROPIC_FIRST_BYTE_TIMEOUT", default: 60)
        idleTimeout = try read.duration("ANTHROPIC_IDLE_TIMEOUT", default: 60)
        offlineWordDelay = try read.duration("OFFLINE_WORD_DELAY", default: 0.04, allowZero: true)
    }
}

/// Limits and timings of chats, replies and their streams.
public struct ChatSettings: Sendable {
    /// The longest message a user may send, in characters.
    public var maxMessageLength: Int
    /// The longest system prompt, in characters.
    public var maxSystemLength: Int
    /// Chats per page of `GET /api/chat/` when no `limit` is given, and the most a `limit` may ask for.
    public var defaultPageSize: Int
    public var maxPageSize: Int
    /// A comment goes out on an idle stream at least this often.
    public var keepAliveInterval: TimeInterval
    /// Events a stream may have waiting for a slow reader before it is disconnected (it resumes by id).
    public var maxPendingEvents: Int
    /// How often a streaming reply's text is saved (which also proves its server is alive).
    public var checkpointInterval: TimeInterval
    /// How long replies in flight may take to finish when the server stops.
    public var drainTimeout: TimeInterval

    /// A reply whose server has not saved it for this long is taken to be lost.
    public var replyLease: TimeInterval { max(checkpointInterval * 6, 30) }

    init(_ read: SettingsReader) throws(SettingsError) {
        maxMessageLength = try read.int("CHAT_MAX_MESSAGE_LENGTH", default: 32_000, in: 1...1_000_000)
        maxSystemLength = try read.int("CHAT_MAX_SYSTEM_LENGTH", default: 20_000, in: 0...1_000_000)
        defaultPageSize = try read.int("CHAT_PAGE_SIZE", default: 20, in: 1...1000)
        maxPageSize = try read.int("CHAT_MAX_PAGE_SIZE", default: 100, in: 1...1000)
        guard defaultPageSize <= maxPageSize else {
            throw SettingsError(key: "CHAT_PAGE_SIZE", problem: "must not exceed CHAT_MAX_PAGE_SIZE (\(maxPageSize))")
        }
        keepAliveInterval = try read.duration("SSE_KEEPALIVE_INTERVAL", default: 15)
        maxPendingEvents = try read.int("SSE_MAX_PENDING_EVENTS", default: 1024, in: 8...1_000_000)
        checkpointInterval = try read.duration("REPLY_CHECKPOINT_INTERVAL", default: 5)
        drainTimeout = try read.duration("REPLY_DRAIN_TIMEOUT", default: 10, allowZero: true)
    }
}
