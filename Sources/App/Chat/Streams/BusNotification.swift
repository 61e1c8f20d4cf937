import Foundation

/// What instances tell each other over PostgreSQL `NOTIFY`: one line of text per notification,
/// `kind|instance|chat|…`, the text of a delta last (it may hold `|`). Whole messages never travel:
/// a notification names a stored message and each instance reads it, so payloads stay far under
/// PostgreSQL's 8,000-byte limit; a long delta is split into pieces that each fit (positions keep
/// event ids the same on every instance).
enum BusNotification: Equatable, Sendable {
    /// A message was stored or a reply began: read it.
    case messageStored(chat: UUID, message: UUID)
    /// The next piece of a reply's answer or reasoning.
    case delta(Piece)
    /// A reply ended and is stored: read it.
    case replyEnded(chat: UUID, message: UUID)
    /// A running reply's first `bytes` of text are saved: read them (the answer to ``syncRequested(chat:)``).
    case replySaved(chat: UUID, message: UUID, bytes: Int)
    /// The chat is gone: its streams end and its reply stops, wherever they are.
    case chatDeleted(chat: UUID)
    /// Whoever runs the reply in `chat` is to stop it.
    case stopRequested(chat: UUID)
    /// Whoever runs the reply in `chat` is to save its text now and say so (``replySaved(chat:message:bytes:)``).
    case syncRequested(chat: UUID)
    /// The account changed (deactivated, signed out everywhere): forget what is cached of it.
    case userChanged(UUID)
    /// The user's chats changed: forget their cached chat list; nil: every user's.
    case chatListChanged(UUID?)
    /// The chat's current conversation changed (now at `revision`): read it.
    case conversationChanged(chat: UUID, revision: Int)
    /// The chat's title is now `title`; nil when it was too long to travel: read it.
    case chatRenamed(chat: UUID, title: String?)
    /// The sender has streams on the chat (said when it starts following, again now and then,
    /// and when a reply starts there): send it the chat's reply text.
    case following(chat: UUID)
    /// The sender has no more streams on the chat.
    case unfollowed(chat: UUID)
    /// The sender dropped notifications it could not send (its queue was full while the database
    /// was away): every instance catches up as when its own listener was down.
    case resync

    /// The most bytes of delta text one notification carries.
    static let maxTextBytes = 7000

    /// Where it goes: events of a chat to the chat's channel (only instances with streams on it
    /// listen), requests and account changes to the control channel (every instance listens).
    var isControl: Bool {
        switch self {
        case .chatDeleted, .stopRequested, .syncRequested, .userChanged, .chatListChanged, .following, .unfollowed, .resync: true
        case .messageStored, .delta, .replyEnded, .replySaved, .conversationChanged, .chatRenamed: false
        }
    }

    var chat: UUID? {
        switch self {
        case .delta(let piece):
            piece.chat
        case .messageStored(let chat, _), .replyEnded(let chat, _), .replySaved(let chat, _, _),
             .conversationChanged(let chat, _), .chatRenamed(let chat, _), .following(let chat), .unfollowed(let chat),
             .chatDeleted(let chat), .stopRequested(let chat), .syncRequested(let chat):
            chat
        case .userChanged, .chatListChanged, .resync:
            nil
        }
    }

    /// This notification as it can travel: whole when it fits PostgreSQL's payload limit, else a
    /// pointer to what each receiver reads from the database instead (a title). A reply's text
    /// never needs this: ``deltas(_:)`` splits it into pieces that fit.
    func fitting() -> BusNotification {
        if case .chatRenamed(let chat, let title?) = self, Self.escapedBytes(title) > Self.maxTextBytes {
            return .chatRenamed(chat: chat, title: nil)
        }
        return self
    }

    /// UTF-8 bytes of `text` once escaped for a payload.
    private static func escapedBytes(_ text: String) -> Int {
        text.utf8.reduce(0) { $0 + ($1 == 0 || $1 == UInt8(ascii: "\\") ? 2 : 1) }
    }

    /// The payload, sent by `instance`.
    func payload(from instance: String) -> String {
        func line(_ parts: String...) -> String { parts.joined(separator: "|") }
        switch self {
        case .messageStored(let chat, let message): return line("m", instance, chat.lowercased, message.lowercased)
        case .delta(let piece) where piece.kind == .answer && piece.segment == 0:
            return line("d", instance, piece.chat.lowercased, piece.message.lowercased, String(piece.sequence), String(piece.offset),
                        Self.escape(piece.text))
        case .delta(let piece):
            return line("D", instance, piece.chat.lowercased, piece.message.lowercased, String(piece.sequence), String(piece.segment),
                        piece.kind == .answer ? "a" : "r", String(piece.offset), Self.escape(piece.text))
        case .replyEnded(let chat, let message): return line("e", instance, chat.lowercased, message.lowercased)
        case .replySaved(let chat, let message, let bytes): return line("s", instance, chat.lowercased, message.lowercased, String(bytes))
        case .chatDeleted(let chat): return line("x", instance, chat.lowercased)
        case .stopRequested(let chat): return line("stop", instance, chat.lowercased)
        case .syncRequested(let chat): return line("sync", instance, chat.lowercased)
        case .userChanged(let user): return line("user", instance, user.lowercased)
        case .chatListChanged(let user?): return line("lists", instance, user.lowercased)
        case .chatListChanged(nil): return line("lists", instance)
        case .conversationChanged(let chat, let revision): return line("c", instance, chat.lowercased, String(revision))
        case .chatRenamed(let chat, let title?): return line("t", instance, chat.lowercased, Self.escape(title))
        case .chatRenamed(let chat, nil): return line("t", instance, chat.lowercased)
        case .following(let chat): return line("f", instance, chat.lowercased)
        case .unfollowed(let chat): return line("u", instance, chat.lowercased)
        case .resync: return line("resync", instance)
        }
    }

    /// Reads a payload; nil when it is not one (another program's, or a newer version's).
    static func parse(_ payload: String) -> (instance: String, notification: BusNotification)? {
        if payload.hasPrefix("D|") { return parsePiece(payload) }
        let parts = payload.split(separator: "|", maxSplits: 6, omittingEmptySubsequences: false)
        if parts.count == 2, parts[0] == "resync" { return (String(parts[1]), .resync) }
        if parts.count == 2, parts[0] == "lists" { return (String(parts[1]), .chatListChanged(nil)) }
        guard parts.count >= 3, let id = UUID(hyphenated: String(parts[2])) else { return nil }
        let instance = String(parts[1])
        func uuid(_ index: Int) -> UUID? { index < parts.count ? UUID(hyphenated: String(parts[index])) : nil }
        func int(_ index: Int) -> Int? { index < parts.count ? Int(parts[index]) : nil }
        let notification: BusNotification?
        switch parts[0] {
        case "m": notification = uuid(3).map { .messageStored(chat: id, message: $0) }
        case "d":
            guard let message = uuid(3), let sequence = int(4), let offset = int(5), parts.count == 7 else { return nil }
            notification = .delta(Piece(chat: id, message: message, sequence: sequence, kind: .answer, segment: 0, offset: offset,
                                        text: unescape(parts[6])))
        case "e": notification = uuid(3).map { .replyEnded(chat: id, message: $0) }
        case "s":
            guard let message = uuid(3), let bytes = int(4) else { return nil }
            notification = .replySaved(chat: id, message: message, bytes: bytes)
        case "x": notification = .chatDeleted(chat: id)
        case "stop": notification = .stopRequested(chat: id)
        case "sync": notification = .syncRequested(chat: id)
        case "user": notification = .userChanged(id)
        case "lists": notification = .chatListChanged(id)
        case "c": notification = int(3).map { .conversationChanged(chat: id, revision: $0) }
        case "f": notification = .following(chat: id)
        case "u": notification = .unfollowed(chat: id)
        case "t": notification = .chatRenamed(chat: id, title: parts.count >= 4 ? unescape(parts[3...].joined(separator: "|")[...]) : nil)
        default: notification = nil
        }
        return notification.map { (instance, $0) }
    }

    /// `D|instance|chat|message|sequence|segment|a or r|offset|text`: a piece of any segment.
    private static func parsePiece(_ payload: String) -> (instance: String, notification: BusNotification)? {
        let parts = payload.split(separator: "|", maxSplits: 8, omittingEmptySubsequences: false)
        guard parts.count == 9, let chat = UUID(hyphenated: String(parts[2])), let message = UUID(hyphenated: String(parts[3])),
              let sequence = Int(parts[4]), let segment = Int(parts[5]), let offset = Int(parts[7]),
              let kind: ReplyDelta.Kind = parts[6] == "a" ? .answer : parts[6] == "r" ? .reasoning : nil else { return nil }
        return (String(parts[1]), .delta(Piece(chat: chat, message: message, sequence: sequence, kind: kind, segment: segment,
                                              offset: offset, text: unescape(parts[8]))))
    }

    /// `delta` as notifications that each carry at most ``maxTextBytes`` of text, split between
    /// Unicode scalars (pieces of text join back whatever they cut).
    static func deltas(_ delta: ReplyDelta) -> [BusNotification] {
        guard let message = UUID(hyphenated: delta.messageID) else { return [] }
        func piece(_ offset: Int, _ text: String) -> BusNotification {
            .delta(Piece(chat: delta.chatID, message: message, sequence: delta.sequence, kind: delta.kind, segment: delta.segment,
                         offset: offset, text: text))
        }
        // Escaping at most doubles the text: short text always fits.
        guard delta.text.utf8.count > maxTextBytes / 2 else { return [piece(delta.offset, delta.text)] }
        var pieces: [BusNotification] = []
        var offset = delta.offset
        var current = String.UnicodeScalarView()
        var currentBytes = 0
        var currentEscapedBytes = 0
        for scalar in delta.text.unicodeScalars {
            let bytes = scalar.utf8.count
            let escaped = scalar == "\\" || scalar == "\u{0}" ? bytes + 1 : bytes
            if currentEscapedBytes + escaped > maxTextBytes {
                pieces.append(piece(offset, String(current)))
                offset += currentBytes
                current = String.UnicodeScalarView()
                currentBytes = 0
                currentEscapedBytes = 0
            }
            current.append(scalar)
            currentBytes += bytes
            currentEscapedBytes += escaped
        }
        pieces.append(piece(offset, String(current)))
        return pieces
    }

    /// PostgreSQL text holds no NUL: `\` and NUL are escaped as `\\` and `\0`.
    private static func escape(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0 || $0 == UInt8(ascii: "\\") }) else { return text }
        return text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\u{0}", with: "\\0")
    }

    private static func unescape(_ text: Substring) -> String {
        guard text.contains("\\") else { return String(text) }
        var result = ""
        var escaping = false
        for character in text {
            if escaping {
                result.append(character == "0" ? "\u{0}" : character)
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else {
                result.append(character)
            }
        }
        return result
    }
}

extension BusNotification {
    /// A piece of a reply's answer or reasoning: which segment of the reply, and its place in it.
    struct Piece: Equatable, Sendable {
        var chat: UUID
        var message: UUID
        var sequence: Int
        var kind: ReplyDelta.Kind
        var segment: Int
        /// UTF-8 bytes of the segment before it.
        var offset: Int
        var text: String

        /// Whether `next` continues this piece directly (the same segment, right after it).
        func isFollowed(by next: Piece) -> Bool {
            next.message == message && next.sequence == sequence && next.segment == segment && next.kind == kind
                && offset + text.utf8.count == next.offset
        }
    }
}
