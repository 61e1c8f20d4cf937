import Foundation

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
    /// The most text and reasoning one reply may hold; a provider that sends more has the reply
    /// failed there, keeping what came.
    public var replyMaxBytes: Int

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
        replyMaxBytes = try read.byteCount("REPLY_MAX_SIZE", default: 32 << 20)
        guard replyLease >= checkpointInterval * 2 else {
            throw SettingsError(key: "REPLY_LEASE", problem: "must be at least twice REPLY_CHECKPOINT_INTERVAL, or live replies would be taken for lost")
        }
    }
}
