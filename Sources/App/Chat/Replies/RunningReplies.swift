import Foundation
import NIOConcurrencyHelpers

/// What a reply needs to know about its turn.
struct ReplyJob: Sendable {
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
}

/// A reply this process runs: its job, its text so far (the one copy of it in this process), its
/// task, and those waiting for it to be stored.
final class RunningReply: Sendable {
    let job: ReplyJob

    private struct State {
        var text = ""
        /// UTF-8 bytes of `text` known to be saved in the database.
        var savedBytes = 0
        var stopReason: ReplyStopReason?
        var omittedMessages = 0
        var task: Task<Void, Never>?
        /// Set once the reply is over: the message as stored (nil when it was not, e.g. its chat is gone).
        var stored: MessageResponse??
        var waiters: [CheckedContinuation<MessageResponse?, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    init(job: ReplyJob) { self.job = job }

    var text: String { state.withLockedValue { $0.text } }
    var stopReason: ReplyStopReason? { state.withLockedValue { $0.stopReason } }
    /// Earlier messages the reply's request left out to fit the model's context.
    var omittedMessages: Int {
        get { state.withLockedValue { $0.omittedMessages } }
        set { state.withLockedValue { $0.omittedMessages = newValue } }
    }
    var live: LiveReply {
        LiveReply(messageID: job.announced.id, sequence: job.sequence, text: text)
    }

    /// Adds the next piece of the text; answers it as a delta to publish. A NUL character a model
    /// sends becomes U+FFFD: no text the service keeps may hold one (PostgreSQL stores none), and
    /// what streams must be what is stored.
    func append(_ piece: String, receivedAt: ContinuousClock.Instant) -> ReplyDelta {
        let piece = piece.utf8.contains(0) ? piece.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : piece
        let offset = state.withLockedValue { state in
            defer { state.text += piece }
            return state.text.utf8.count
        }
        return ReplyDelta(chatID: job.chatID, messageID: job.announced.id, sequence: job.sequence, offset: offset,
                          text: piece, receivedAt: receivedAt)
    }

    /// The text to save, and its length, when some arrived since the last successful save.
    func unsavedText() -> (text: String, bytes: Int)? {
        state.withLockedValue { state in
            let bytes = state.text.utf8.count
            return bytes == state.savedBytes ? nil : (state.text, bytes)
        }
    }

    /// Records that the first `bytes` of the text are saved (after the write succeeded).
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

    /// Whether the reply is over.
    var isFinished: Bool { state.withLockedValue { $0.stored != nil } }
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

/// Work that follows a stored reply (naming its chat): each piece in a task of its own, tracked so
/// that shutdown ends it before the database closes. Nothing new starts once shutdown has begun.
final class ReplyFollowUps: Sendable {
    private struct State {
        var tasks: [Int: Task<Void, Never>] = [:]
        var nextID = 0
        var isClosed = false
    }

    private let state = NIOLockedValueBox(State())

    /// Runs `work` in a task of its own, unless shutdown has begun.
    func run(_ work: @escaping @Sendable () async -> Void) {
        state.withLockedValue { state in
            guard !state.isClosed else { return }
            let id = state.nextID
            state.nextID += 1
            // The task removes itself under the same lock, so never before it was added.
            state.tasks[id] = Task {
                await work()
                self.state.withLockedValue { _ = $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    /// How many are running.
    var count: Int { state.withLockedValue { $0.tasks.count } }

    /// Starts nothing more; lets what runs go on until `deadline`, then cancels the rest; returns
    /// once every one has ended.
    func close(by deadline: ContinuousClock.Instant) async {
        let running = state.withLockedValue { state in
            state.isClosed = true
            return Array(state.tasks.values)
        }
        guard !running.isEmpty else { return }
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for task in running { await task.value }
                return true
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return false
            }
            if await group.next() == false { running.forEach { $0.cancel() } }
            group.cancelAll()
        }
    }
}
