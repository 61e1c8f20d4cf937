import Foundation
import NIOConcurrencyHelpers
import Providers

/// What a reply needs to know about its turn.
struct ReplyJob: Sendable {
    /// Whose reply it is: its usage is theirs, even once the chat is gone.
    var userID: UUID
    var chatID: UUID
    var messageID: UUID
    var sequence: Int
    var model: String
    var system: String?
    /// The assistant message as it was announced (`streaming`, no text yet).
    var announced: MessageResponse
    /// The chat waits for a title (``ChatTitler``): once this reply is complete, it gets one.
    var needsTitle = false
}

/// Why a running reply was stopped before it finished.
enum ReplyStopReason: Sendable, Equatable {
    case stoppedByUser
    case chatDeleted
    case shutdown
    /// Another instance or path ended the reply first; this one only lets go.
    case finishedElsewhere
    /// The provider sent more than a reply may hold (`REPLY_MAX_SIZE`).
    case tooLarge(bytes: Int)
}

/// A reply this process runs: its job, its text and reasoning so far (the one copy of them in this
/// process), its task, and those waiting for it to be stored.
final class RunningReply: Sendable {
    let job: ReplyJob

    private struct State {
        var text = ""
        /// Its reasoning, when it leads the reply (nil until some arrives before any text).
        var reasoning: String?
        var reasoningSignature: String?
        var signatureDropped = false
        /// UTF-8 bytes of text and reasoning together known to be saved in the database.
        var savedBytes = 0
        var stopReason: ReplyStopReason?
        /// The server is stopping: whatever the reply's reason to stop, its writes are not waited for.
        var shuttingDown = false
        var omittedMessages = 0
        /// What it consumed so far, as reported or estimated.
        var usage = ReplyUsage()
        var task: Task<Void, Never>?
        /// Set once the reply is over: the message as stored (nil when it was not, e.g. its chat is gone).
        var stored: MessageResponse??
        var waiters: [CheckedContinuation<MessageResponse?, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    /// The most text and reasoning together it may hold, in bytes.
    let maxBytes: Int

    init(job: ReplyJob, maxBytes: Int = 32 << 20) {
        self.job = job
        self.maxBytes = maxBytes
    }

    var text: String { state.withLockedValue { $0.text } }
    var reasoning: String? { state.withLockedValue { $0.reasoning } }
    var reasoningSignature: String? { state.withLockedValue { $0.reasoningSignature } }
    var stopReason: ReplyStopReason? { state.withLockedValue { $0.stopReason } }
    /// Shutdown stopped the reply, or came after it was stopped: its end is not retried.
    var isShuttingDown: Bool { state.withLockedValue { $0.shuttingDown } }
    /// Earlier messages the reply's request left out to fit the model's context.
    var omittedMessages: Int { state.withLockedValue { $0.omittedMessages } }
    var usage: ReplyUsage { state.withLockedValue { $0.usage } }

    /// The request is ready: it left out `omittedMessages` earlier messages, and its prompt is
    /// estimated at `promptEstimate` tokens.
    func prepared(omittedMessages: Int, promptEstimate: Int) {
        state.withLockedValue { state in
            state.omittedMessages = omittedMessages
            state.usage.promptEstimate = promptEstimate
        }
    }

    /// The provider reported its usage so far.
    func noteUsage(_ usage: ModelUsage, final: Bool) {
        state.withLockedValue { $0.usage.note(usage, final: final) }
    }
    var live: LiveReply {
        state.withLockedValue { LiveReply(messageID: job.announced.id, sequence: job.sequence, reasoning: $0.reasoning, text: $0.text) }
    }

    /// Adds the next piece of the answer (or, `kind: .reasoning`, of the reasoning); answers it as a
    /// delta to publish. Reasoning is streamed while it leads the reply; reasoning that comes once
    /// the answer has begun without any before it has no segment to go to, and is dropped (no
    /// provider sends it so). A NUL character a model sends becomes U+FFFD: no text the service
    /// keeps may hold one (PostgreSQL stores none), and what streams must be what is stored.
    /// A reply that would grow past `maxBytes` is stopped instead (``ReplyStopReason/tooLarge(bytes:)``).
    func append(_ piece: String, kind: ReplyDelta.Kind = .answer, receivedAt: ContinuousClock.Instant) -> ReplyDelta? {
        let piece = piece.utf8.contains(0) ? piece.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : piece
        enum Placement { case placed(segment: Int, offset: Int), kept, tooLarge }
        let placement: Placement = state.withLockedValue { state in
            guard state.text.utf8.count + (state.reasoning?.utf8.count ?? 0) + piece.utf8.count <= maxBytes else { return .tooLarge }
            switch kind {
            case .answer:
                defer { state.text += piece }
                return .placed(segment: kind.segment(hasReasoning: state.reasoning != nil), offset: state.text.utf8.count)
            case .reasoning:
                guard state.text.isEmpty || state.reasoning != nil else { return .kept }
                let offset = state.reasoning?.utf8.count ?? 0
                if state.reasoning == nil { state.reasoning = piece } else { state.reasoning?.append(piece) }
                // Reasoning after the answer began (it led the reply) is kept, not streamed.
                return state.text.isEmpty ? .placed(segment: 0, offset: offset) : .kept
            }
        }
        let placed: (segment: Int, offset: Int)
        switch placement {
        case .placed(let segment, let offset): placed = (segment, offset)
        case .kept: return nil
        case .tooLarge:
            stop(.tooLarge(bytes: maxBytes))
            return nil
        }
        return ReplyDelta(chatID: job.chatID, messageID: job.announced.id, sequence: job.sequence, kind: kind, segment: placed.segment,
                          offset: placed.offset, text: piece, receivedAt: receivedAt)
    }

    /// The signature of the reasoning so far (kept for a later request to send back with it).
    /// One that grows past 1 MiB, or holds a NUL, is no signature the provider made: it is dropped.
    func signReasoning(_ signature: String) {
        state.withLockedValue { state in
            guard !state.signatureDropped else { return }
            let signed = (state.reasoningSignature ?? "") + signature
            if signed.utf8.count > 1 << 20 || signature.utf8.contains(0) {
                (state.reasoningSignature, state.signatureDropped) = (nil, true)
            } else {
                state.reasoningSignature = signed
            }
        }
    }

    /// The text and reasoning to save, and their length together, when some arrived since the last
    /// successful save.
    func unsaved() -> (text: String, reasoning: String?, bytes: Int)? {
        state.withLockedValue { state in
            let bytes = state.text.utf8.count + (state.reasoning?.utf8.count ?? 0)
            return bytes == state.savedBytes ? nil : (state.text, state.reasoning, bytes)
        }
    }

    /// Records that `bytes` of text and reasoning are saved (after the write succeeded).
    func saved(bytes: Int) {
        state.withLockedValue { $0.savedBytes = max($0.savedBytes, bytes) }
    }

    /// Gives the reply its task; a stop that came first cancels it at once.
    func attach(_ task: Task<Void, Never>) {
        let stopped = state.withLockedValue { state in
            state.task = task
            return state.stopReason != nil
        }
        if stopped { task.cancel() }
    }

    /// Stops the reply (the first reason given is the one kept): its task is cancelled now, or as
    /// soon as it has one, which closes the upstream request.
    func stop(_ reason: ReplyStopReason) {
        let task = state.withLockedValue { state in
            if state.stopReason == nil { state.stopReason = reason }
            if reason == .shutdown { state.shuttingDown = true }
            return state.task
        }
        task?.cancel()
    }

    /// The reply is over: wakes everyone waiting for it.
    func finished(_ stored: MessageResponse?) {
        let waiters = state.withLockedValue { state in
            state.stored = .some(stored)
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume(returning: stored) }
    }

    /// Waits until the reply is over; the message as stored.
    func result() async -> MessageResponse? {
        await withCheckedContinuation { continuation in
            let stored: MessageResponse?? = state.withLockedValue { state in
                if let stored = state.stored { return .some(stored) }
                state.waiters.append(continuation)
                return .none
            }
            if case .some(let stored) = stored { continuation.resume(returning: stored) }
        }
    }

}

/// The replies this process runs, by chat: shared by the runner, which starts and ends them, and
/// the event bus, which reads their text for new streams and passes on stops asked for elsewhere.
final class RunningReplies: Sendable {
    private struct State {
        var byChat: [UUID: RunningReply] = [:]
        var isDraining = false
    }

    private let state = NIOLockedValueBox(State())

    /// Adds `reply`; false while the server is stopping.
    func register(_ reply: RunningReply) -> Bool {
        state.withLockedValue { state in
            guard !state.isDraining else { return false }
            state.byChat[reply.job.chatID] = reply
            return true
        }
    }

    /// Removes `reply` if it is still the one registered for its chat.
    func remove(_ reply: RunningReply) {
        state.withLockedValue { state in
            if state.byChat[reply.job.chatID] === reply { state.byChat[reply.job.chatID] = nil }
        }
    }

    func reply(in chat: UUID) -> RunningReply? { state.withLockedValue { $0.byChat[chat] } }
    func liveReply(in chat: UUID) -> LiveReply? { reply(in: chat)?.live }
    var all: [RunningReply] { state.withLockedValue { Array($0.byChat.values) } }
    var count: Int { state.withLockedValue { $0.byChat.count } }
    var isDraining: Bool { state.withLockedValue { $0.isDraining } }

    /// Refuses new replies from now on; answers those in flight.
    func beginDraining() -> [RunningReply] {
        state.withLockedValue { state in
            state.isDraining = true
            return Array(state.byChat.values)
        }
    }

    /// Stops the reply in `chat`, if this process runs one.
    func stop(in chat: UUID, _ reason: ReplyStopReason) {
        reply(in: chat)?.stop(reason)
    }
}
