import Foundation
import NIOConcurrencyHelpers

/// What an instance with streams on a chat knows of it from other instances' notifications: the
/// text so far of a reply running elsewhere, and the events on their way to its streams.
///
/// Notifications are handled in the order they came. Those that name a stored message wait for it
/// to be read, and everything after them waits too, so streams get events in their order. The
/// reply's text is known only from its first byte on: a follower that joined late, or missed
/// notifications while its listener was down, holds the pieces it gets until the running
/// instance says how far its saved text goes (``BusNotification/replySaved(chat:message:bytes:)``),
/// then reads that text, lets every stream catch up from its own position (``StreamFrame/catchUp(_:)``),
/// and goes on live. Nothing reaches a stream twice: positions drop what it has.
///
/// It reaches the bus only through ``FollowerHost``.
final class ReplyFollower: Sendable {
    let chat: UUID
    private unowned let host: any FollowerHost

    private struct State {
        /// The followed reply, with its text from the first byte, when known.
        var live: LiveReply?
        /// Pieces that came before what precedes them was known, by message.
        var held: [UUID: [BusNotification.Piece]] = [:]
        /// Steps waiting for the one running (and any read of the database it started), in order.
        var queue: [Step] = []
        var busy = false
        var syncRequested = false
        var listening: Task<Bool, Never>?
    }

    /// What the follower does next: a notification, or a catch-up of its streams.
    private enum Step {
        case notification(BusNotification)
        case catchUp
    }

    private let state = NIOLockedValueBox(State())

    init(chat: UUID, host: any FollowerHost) {
        self.chat = chat
        self.host = host
    }

    /// The followed reply's text so far, when known from its first byte.
    var live: LiveReply? { state.withLockedValue { $0.live } }

    /// Starts listening to the chat's channel (once).
    func startListening(_ listen: @escaping @Sendable () async -> Bool) {
        state.withLockedValue { $0.listening = Task(operation: listen) }
    }

    /// Returns once the chat's events reach this instance (or the listener is down: then the
    /// follower catches up when it comes back).
    func listening() async {
        _ = await state.withLockedValue { $0.listening }?.value
    }

    /// The listener was down: what this follower knew may be stale. Its streams catch up from
    /// the stored chat, and the reply's text is held until the running instance says how far it is.
    func lostTrack() {
        state.withLockedValue { state in
            state.live = nil
            state.held = [:]
            state.syncRequested = true
        }
        enqueue(.catchUp)
    }

    func receive(_ notification: BusNotification) {
        enqueue(.notification(notification))
    }

    private func enqueue(_ step: Step) {
        let runNow = state.withLockedValue { state -> Bool in
            guard !state.busy else {
                state.queue.append(step)
                return false
            }
            state.busy = true
            return true
        }
        if runNow { run(step) }
    }

    /// Runs `step`, then the steps queued meanwhile, one at a time; a step that reads the database
    /// goes on with the rest once its read is done.
    private func run(_ step: Step) {
        var next: Step? = step
        while let step = next {
            switch step {
            case .notification(.delta(let piece)):
                apply(piece)
            case .notification(.messageStored(_, let message)):
                return read { [self] in
                    guard let stored = try await host.storedMessage(message) else { return }
                    if stored.status == .streaming {
                        // A reply starts: whoever runs it is to send its text here. Its start
                        // reaches the streams before any of its text held meanwhile.
                        host.announceFollowing(chat)
                        let held = adopt(stored)
                        host.publishStored(stored)
                        relay(held)
                    } else if stored.role == .assistant {
                        // The reply ended before this instance read its start: streams get it as
                        // the instance running it told its own, a start, the text, then `done`.
                        host.publishStored(stored.asBegun)
                        host.publish(.catchUp([stored]), to: chat)
                    } else {
                        host.publishStored(stored)
                    }
                }
            case .notification(.replyEnded(_, let message)):
                return read { [self] in
                    guard let stored = try await host.storedMessage(message) else { return }
                    state.withLockedValue { state in
                        if state.live?.messageID == stored.id { state.live = nil }
                        state.held[message] = nil
                    }
                    // Each stream gets the end from where it stands: the rest of the text it may
                    // have missed (pieces this follower held, not knowing what came before), then `done`.
                    host.publish(.catchUp([stored]), to: chat)
                }
            case .notification(.replySaved(_, let message, _)):
                return read { [self] in
                    guard let stored = try await host.storedMessage(message), stored.status == .streaming else { return }
                    // The streams catch up to the saved text first, then get what came after it:
                    // a piece held meanwhile must not jump over text they never had.
                    let held = adopt(stored)
                    host.publish(.catchUp(try await host.conversation(of: chat)), to: chat)
                    relay(held)
                }
            case .catchUp:
                return read { [self] in
                    host.publish(.catchUp(try await host.conversation(of: chat)), to: chat)
                }
            case .notification:
                break
            }
            next = dequeue()
        }
    }

    /// The next queued step; when there is none, the follower is no longer busy.
    private func dequeue() -> Step? {
        state.withLockedValue { state in
            guard !state.queue.isEmpty else {
                state.busy = false
                return nil
            }
            return state.queue.removeFirst()
        }
    }

    /// Runs `body` (which reads the database) while later steps wait, then goes on with them.
    private func read(_ body: @escaping @Sendable () async throws -> Void) {
        host.run { [self] in
            do {
                try await body()
            } catch {
                // The streams cannot be told what this was: they end, and reconnect by id.
                host.publish(.end(ChatStreamHub.shuttingDown), to: chat)
            }
            if let next = dequeue() { run(next) }
        }
    }

    /// Follows `stored` (a streaming reply) from its saved text on (unless more of it is known);
    /// answers the pieces held for it, for ``relay(_:)`` once the streams have what comes before.
    private func adopt(_ stored: MessageResponse) -> [BusNotification.Piece] {
        guard let message = UUID(hyphenated: stored.id) else { return [] }
        return state.withLockedValue { state in
            if let known = state.live, known.messageID == stored.id, known.covers(stored) {
                return state.held.removeValue(forKey: message) ?? []
            }
            state.live = LiveReply(messageID: stored.id, sequence: stored.sequence, reasoning: stored.reasoning, text: stored.content,
                                   toolCalls: stored.toolCalls)
            state.syncRequested = false
            return state.held.removeValue(forKey: message) ?? []
        }
    }

    /// Applies pieces held for a reply, in order: those that go past what is known are relayed.
    private func relay(_ held: [BusNotification.Piece]) {
        for piece in held.sorted(by: { ($0.segment, $0.offset) < ($1.segment, $1.offset) }) { apply(piece) }
    }

    /// A piece of the followed reply: appended and relayed when it continues what is known of its
    /// segment (the part already known dropped), held when something before it is missing.
    private func apply(_ piece: BusNotification.Piece) {
        enum Action {
            case relay(ReplyDelta)
            case hold(askSync: Bool)
            case none
        }
        let action: Action = state.withLockedValue { state in
            func hold() -> Action {
                state.held[piece.message, default: []].append(piece)
                defer { state.syncRequested = true }
                return .hold(askSync: !state.syncRequested)
            }
            guard var live = state.live, live.messageID == piece.message.lowercased else { return hold() }
            // The segment this piece belongs in, as the reply is known here (``ReplyRound``):
            // reasoning streams only while it leads its round, and the answer comes after it. A
            // piece for a later segment waits for what comes before it (a call, its result).
            let round = ReplyRound(after: live.toolCalls)
            guard let placed = round.placement(of: piece.kind, reasoningBytes: live.reasoning?.utf8.count ?? 0,
                                               textBytes: live.text.utf8.count) else {
                // Reasoning once this round's answer began is dropped; a later round's waits for its start.
                return piece.segment > round.closedSegments + 1 ? hold() : .none
            }
            guard piece.segment == placed.segment else { return piece.segment < placed.segment ? .none : hold() }
            let known = placed.offset
            guard piece.offset + piece.text.utf8.count > known else { return .none }
            guard piece.offset <= known else { return hold() }
            let utf8 = piece.text.utf8
            guard let start = utf8.index(utf8.startIndex, offsetBy: known - piece.offset, limitedBy: utf8.endIndex),
                  let rest = String(utf8[start...]) else { return .none }
            switch piece.kind {
            case .answer: live.text += rest
            case .reasoning: live.reasoning = (live.reasoning ?? "") + rest
            }
            state.live = live
            return .relay(ReplyDelta(chatID: chat, messageID: live.messageID, sequence: piece.sequence, kind: piece.kind,
                                     segment: piece.segment, offset: known, text: rest, receivedAt: .now))
        }
        switch action {
        case .relay(let delta): host.publishDelta(delta)
        case .hold(let askSync): if askSync { host.requestSync(chat) }
        case .none: break
        }
    }
}

/// What a ``ReplyFollower`` needs of the bus it follows a chat for: the chat's streams in this
/// process, the stored chat, a word to the other instances, and an owner for its reads.
protocol FollowerHost: AnyObject, Sendable {
    /// Hands `frame` to every stream of `chat` in this process.
    func publish(_ frame: StreamFrame, to chat: UUID)
    func publishStored(_ message: MessageResponse)
    func publishDelta(_ delta: ReplyDelta)
    /// The stored message `id`, as a stream shows it.
    func storedMessage(_ id: UUID) async throws -> MessageResponse?
    /// The chat as a stream replays it.
    func conversation(of chat: UUID) async throws -> [MessageResponse]
    /// Says that this instance follows `chat` (whoever runs its reply is to send its text here).
    func announceFollowing(_ chat: UUID)
    /// Asks whoever runs `chat`'s reply to say how far it is.
    func requestSync(_ chat: UUID)
    /// Runs `work` in a task that shutdown ends.
    func run(_ work: @escaping @Sendable () async -> Void)
}
