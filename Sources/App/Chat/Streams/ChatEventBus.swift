import Foundation
import NIOCore

/// How a chat's events reach every stream open on it, in this process and — on PostgreSQL — in
/// every other instance. The reply runner and the chat service publish; each
/// `GET /api/chat/<id>/messages/` subscribes. ``ChatBus`` is the one implementation (over a
/// ``ChatStreamHub`` for this process's streams and, across instances, an ``InstanceTransport``);
/// the rest of the code names this protocol, so that tests may stand in for it.
protocol ChatEventBus: Sendable {
    /// Opens a stream on `chat` for `session`, served on `eventLoop`: it receives every event
    /// published from now on (so read the stored chat after this, and let positions drop what came
    /// twice). A stream past its token's expiry, or whose session was signed out, ends with an
    /// `error` event. Throws ``ChatError/tooManyStreams(_:)`` when the user holds the most streams allowed.
    func subscribe(to chat: UUID, session: StreamSession, on eventLoop: any EventLoop) async throws -> StreamSubscriber
    /// Drops a stream whose response never started.
    func cancel(_ subscriber: StreamSubscriber)

    /// A message was stored (a user message), or an assistant reply began (status `streaming`).
    func messageStored(_ message: MessageResponse)
    /// The next piece of a reply in progress.
    func replyDelta(_ delta: ReplyDelta)
    /// The reply called a tool or got its result: this process's streams catch up to `message`
    /// (the reply as it stands), with `tool_call` and `tool_result` events.
    func replyProgressed(_ message: MessageResponse)
    /// The reply is saved as it stands (`bytes` of text and reasoning, its calls): the other
    /// instances read it and their streams catch up.
    func replySaved(chat: UUID, message: UUID, bytes: Int)
    /// The reply ended and is stored: `complete`, `failed` or `cancelled`.
    func replyEnded(_ message: MessageResponse)
    /// The chat is gone: its streams end with an `error` event, and its reply stops wherever it runs.
    func chatDeleted(_ chat: UUID)
    /// The current conversation changed (a regeneration, an edit, a switch of version) and is now
    /// `conversation`, at `revision`: every stream says so (`conversation`) and replays it whole.
    func conversationChanged(in chat: UUID, revision: Int, conversation: [MessageResponse])
    /// The chat's title changed: every stream gets a `chat` event.
    func chatRenamed(_ chat: UUID, title: String)
    /// A stream read the chat at `revision`: events published for it from now on are of at least that revision.
    func noteRevision(_ revision: Int, of chat: UUID)

    /// Asks whichever instance runs the reply in `chat` to stop it; false when no other instance
    /// can be asked (one process), so that the caller treats the reply as nobody's.
    func requestStop(in chat: UUID) async -> Bool
    /// Tells every other instance that something they may keep in memory changed.
    func announce(_ change: CachedChange)
    /// What to do when another instance says something kept in memory changed (nil: anything may
    /// have, while this instance could not hear).
    func onCachedChanges(_ handler: @escaping @Sendable (CachedChange?) -> Void)
    /// The text so far of the reply in progress in `chat`, when this process knows it (it runs the
    /// reply, or follows it for its own streams).
    func liveReply(in chat: UUID) -> LiveReply?

    /// Connects what carries events between instances (nothing for one process); a second call does nothing.
    func start() async

    /// Ends the streams of `userID` opened with a token issued before `cut` (every one of them, those
    /// opened with an API key too, when `cut` is nil: the account is gone or inactive), in this
    /// process, with an `error` event. A key is no session: a sign-out leaves its streams open.
    func endStreams(of userID: String, issuedBefore cut: Date?)
    /// Ends the streams of `userID` opened with an API key not in `kept` (revoked), in this process.
    func endKeyStreams(of userID: String, keeping kept: Set<UUID>)
    /// The users with streams open in this process.
    var usersWithStreams: [String] { get }

    /// Ends streams whose access token has expired, drops streams whose response never started,
    /// and, when `sendKeepAlive`, sends every other stream a keep-alive comment.
    func tick(now: Date, sendKeepAlive: Bool)
    /// Ends every stream (clients reconnect elsewhere) and refuses new ones.
    func shutdown() async
    /// Streams open in this process.
    var openStreamCount: Int { get }
}

/// A change to rows every instance may keep in memory (``ChangeAwareCache``), told over the bus.
enum CachedChange: Sendable, Equatable {
    /// The account changed (``SignedInUsers``).
    case account(UUID)
    /// The user's chats changed (``ChatLists``); nil: any user's may have.
    case chatList(UUID?)
}

/// The access token a stream was opened with: whose it is, and when it was issued and expires.
struct StreamSession: Sendable, Equatable {
    var userID: String
    var issuedAt: Date?
    var expiresAt: Date?
    /// The API key the stream was opened with; nil for an access token.
    var keyID: UUID? = nil
}

/// A reply as it streams: which message, and its reasoning, text and tool calls so far.
struct LiveReply: Sendable, Equatable {
    var messageID: String
    var sequence: Int
    /// Its reasoning so far; nil when it has none (see ``ReplyLayout``).
    var reasoning: String?
    var text: String
    var toolCalls: [ToolCallRecord]

    init(messageID: String, sequence: Int, reasoning: String? = nil, text: String, toolCalls: [ToolCallRecord] = []) {
        self.messageID = messageID
        self.sequence = sequence
        self.reasoning = reasoning
        self.text = text
        self.toolCalls = toolCalls
    }

    /// How far a stream that has all of it stands.
    var position: StreamPosition {
        ReplyLayout(reasoning: reasoning, text: text, toolCalls: toolCalls).end(sequence: sequence)
    }

    /// Whether it holds at least what `message` (the same reply, as stored) holds.
    func covers(_ message: MessageResponse) -> Bool {
        toolCalls.count >= message.toolCalls.count && toolCalls.answered >= message.toolCalls.answered
            && text.utf8.count >= message.content.utf8.count && (reasoning?.utf8.count ?? 0) >= (message.reasoning?.utf8.count ?? 0)
    }
}

/// The next piece of a reply — of its answer, or of its reasoning — and where it goes (a segment of
/// the reply and a byte offset in it), so that every instance gives it the same event id.
struct ReplyDelta: Sendable, Equatable {
    /// What a piece is of; which segment it goes to is the reply's layout's to say (``ReplyLayout``).
    enum Kind: String, Sendable, Equatable {
        case answer
        case reasoning
    }

    var chatID: UUID
    var messageID: String
    var sequence: Int
    var kind: Kind = .answer
    var segment = 0
    /// UTF-8 bytes of the segment before this piece.
    var offset: Int
    var text: String
    /// When the piece reached this server, from the model provider or in another instance's
    /// notification (to measure the relay); nil when not measured.
    var receivedAt: ContinuousClock.Instant?

    /// Where the stream stands once this piece is delivered.
    var end: StreamPosition { StreamPosition(sequence: sequence, segment: segment, offset: offset + text.utf8.count) }
}
