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
    /// The chat's tools (``Chat/tools``), offered to the model.
    var tools: [String] = []
    /// The user's daily token quota (nil: none): between tool rounds, past it, the model answers without tools.
    var quota: Int?
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
        /// The tools it called so far, and where the round in progress begins.
        var toolCalls: [ToolCallRecord] = []
        var round = ReplyRound(after: [])
        /// UTF-8 bytes of the calls' arguments and results, which count toward `maxBytes` with the text.
        var toolBytes = 0
        /// Counts changes to the calls; `savedToolChanges` of them are known to be saved.
        var toolChanges = 0
        var savedToolChanges = 0
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

    /// The most text, reasoning and tool calls (arguments and results) together it may hold, in bytes.
    let maxBytes: Int
    /// Its saves (checkpoints, a save for followers, a tool call's), one at a time and each with
    /// a snapshot taken when its turn comes, so that an older one never lands after a newer one.
    let saves = SerialWork()

    init(job: ReplyJob, maxBytes: Int = 32 << 20) {
        self.job = job
        self.maxBytes = maxBytes
    }

    var text: String { state.withLockedValue { $0.text } }
    var reasoning: String? { state.withLockedValue { $0.reasoning } }
    var reasoningSignature: String? { state.withLockedValue { $0.reasoningSignature } }
    var toolCalls: [ToolCallRecord] { state.withLockedValue { $0.toolCalls } }
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

    /// A round of a tool loop ended (``ReplyUsage/endRound(output:completion:nextPrompt:)``).
    func endRound(output: String, completion: ModelCompletion, nextPrompt: Int) {
        state.withLockedValue { $0.usage.endRound(output: output, completion: completion, nextPrompt: nextPrompt) }
    }
    var live: LiveReply {
        state.withLockedValue {
            LiveReply(messageID: job.announced.id, sequence: job.sequence, reasoning: $0.reasoning, text: $0.text, toolCalls: $0.toolCalls)
        }
    }

    /// What the round in progress wrote: its reasoning (nil: none) with its signature, and its text.
    var roundOutput: (reasoning: String?, signature: String?, text: String) {
        state.withLockedValue { state in
            let reasoning = state.reasoning.map { String($0.utf8.dropFirst(state.round.reasoningStart)) ?? "" } ?? ""
            let text = String(state.text.utf8.dropFirst(state.round.textStart)) ?? ""
            return (reasoning.isEmpty ? nil : reasoning, state.reasoningSignature, text)
        }
    }

    /// The model called a tool: the call is recorded where the reply stands; answers its index.
    /// A call that would make the reply hold more than `maxBytes` (its text, reasoning, calls and
    /// results together) stops the reply instead (``ReplyStopReason/tooLarge(bytes:)``), and answers nil.
    func beginToolCall(id: String, name: String, arguments: JSONValue) -> Int? {
        let added = arguments.jsonText.utf8.count + id.utf8.count + name.utf8.count
        let index: Int? = state.withLockedValue { state in
            guard state.text.utf8.count + (state.reasoning?.utf8.count ?? 0) + state.toolBytes + added <= maxBytes else { return nil }
            state.toolBytes += added
            state.toolCalls.append(ToolCallRecord(callID: id, name: name, arguments: arguments, textOffset: state.text.utf8.count,
                                                  reasoningOffset: state.reasoning?.utf8.count ?? 0))
            state.round = ReplyRound(after: state.toolCalls)
            state.toolChanges += 1
            return state.toolCalls.count - 1
        }
        if index == nil { stop(.tooLarge(bytes: maxBytes)) }
        return index
    }

    /// The call at `index` came back (or was given up).
    func finishToolCall(_ index: Int, result: String, isError: Bool, duration: Duration) {
        state.withLockedValue { state in
            guard state.toolCalls.indices.contains(index) else { return }
            state.toolBytes += result.utf8.count
            state.toolCalls[index].result = result
            state.toolCalls[index].isError = isError
            state.toolCalls[index].durationMs = Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
            state.round = ReplyRound(after: state.toolCalls)
            state.toolChanges += 1
            // The next round signs its own reasoning.
            (state.reasoningSignature, state.signatureDropped) = (nil, false)
        }
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
            let reasoningBytes = state.reasoning?.utf8.count ?? 0
            guard state.text.utf8.count + reasoningBytes + state.toolBytes + piece.utf8.count <= maxBytes else { return .tooLarge }
            // Reasoning once the round's answer began has no segment to go to (``ReplyRound``): dropped.
            guard let placed = state.round.placement(of: kind, reasoningBytes: reasoningBytes, textBytes: state.text.utf8.count) else {
                return .kept
            }
            switch kind {
            case .answer: state.text += piece
            case .reasoning: if state.reasoning == nil { state.reasoning = piece } else { state.reasoning?.append(piece) }
            }
            return .placed(segment: placed.segment, offset: placed.offset)
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

    /// What to save when something changed since the last successful save: the text and
    /// reasoning with their length together, and the calls with their count of changes.
    func unsaved() -> Unsaved? {
        state.withLockedValue { state in
            let bytes = state.text.utf8.count + (state.reasoning?.utf8.count ?? 0)
            guard bytes != state.savedBytes || state.toolChanges != state.savedToolChanges else { return nil }
            return Unsaved(text: state.text, reasoning: state.reasoning, bytes: bytes,
                           toolCalls: state.toolChanges == state.savedToolChanges ? nil : state.toolCalls, toolChanges: state.toolChanges)
        }
    }

    struct Unsaved {
        var text: String
        var reasoning: String?
        var bytes: Int
        /// Nil when they are saved already.
        var toolCalls: [ToolCallRecord]?
        var toolChanges: Int
    }

    /// Everything as it stands, to save whatever the last save holds.
    func snapshot() -> Unsaved {
        state.withLockedValue { state in
            Unsaved(text: state.text, reasoning: state.reasoning, bytes: state.text.utf8.count + (state.reasoning?.utf8.count ?? 0),
                    toolCalls: state.toolCalls, toolChanges: state.toolChanges)
        }
    }

    /// Records that `saved` is in the database (after the write succeeded).
    func saved(_ saved: Unsaved) {
        state.withLockedValue { state in
            state.savedBytes = max(state.savedBytes, saved.bytes)
            if saved.toolCalls != nil { state.savedToolChanges = max(state.savedToolChanges, saved.toolChanges) }
        }
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
