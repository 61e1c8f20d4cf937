import Fluent
import Foundation
import NIOConcurrencyHelpers
import Providers
import Vapor

/// Runs assistant replies on the server, owned by no client connection: a reply goes on when
/// every stream closes, and is stored once when it ends — `complete`, `failed` (with its partial
/// text) or `cancelled`. Replies in flight are saved every `checkpointInterval`, which also proves
/// to other instances that this one is alive; on shutdown they get `drainTimeout` to finish.
final class ReplyRunner: Sendable {
    /// What a reply needs to know about its turn.
    struct Job: Sendable {
        var chatID: UUID
        var messageID: UUID
        var sequence: Int
        var model: String
        var system: String?
        /// The assistant message as it was announced (`streaming`, no text yet).
        var announced: MessageResponse
    }

    enum StopReason: Sendable {
        case stoppedByUser
        case chatDeleted
        case shutdown
        /// Another instance stopped or failed the reply; this one only lets go.
        case finishedElsewhere
    }

    /// A reply in flight: its task and what it has received so far.
    final class Running: Sendable {
        let job: Job
        private struct State {
            var task: Task<MessageResponse?, Never>?
            var stopReason: StopReason?
            var text = ""
            var savedLength = 0
        }
        private let state = NIOLockedValueBox(State())

        init(job: Job) { self.job = job }

        var task: Task<MessageResponse?, Never>? { state.withLockedValue { $0.task } }
        var stopReason: StopReason? { state.withLockedValue { $0.stopReason } }
        var text: String { state.withLockedValue { $0.text } }

        /// Gives the reply its task; a stop that came first cancels it at once.
        func attach(_ task: Task<MessageResponse?, Never>) {
            let stopped = state.withLockedValue { state in
                state.task = task
                return state.stopReason != nil
            }
            if stopped { task.cancel() }
        }
        func append(_ piece: String) { state.withLockedValue { $0.text += piece } }

        func stop(_ reason: StopReason) {
            let task = state.withLockedValue { state in
                if state.stopReason == nil { state.stopReason = reason }
                return state.task
            }
            task?.cancel()
        }

        /// The text to save, or nil when nothing arrived since the last save.
        func unsavedText() -> String? {
            state.withLockedValue { state in
                guard state.text.utf8.count != state.savedLength else { return nil }
                state.savedLength = state.text.utf8.count
                return state.text
            }
        }
    }

    private struct Registry {
        var replies: [UUID: Running] = [:]
        var isDraining = false
    }

    let bus: any ChatEventBus
    let catalog: ModelCatalog
    let store: ReplyStore
    let clock: any WallClock
    let settings: ChatSettings
    let logger: Logger
    let metrics: AppMetrics
    private let registry = NIOLockedValueBox(Registry())

    init(bus: any ChatEventBus, catalog: ModelCatalog, store: ReplyStore, clock: any WallClock, settings: ChatSettings,
         logger: Logger, metrics: AppMetrics) {
        self.metrics = metrics
        self.bus = bus
        self.catalog = catalog
        self.store = store
        self.clock = clock
        self.settings = settings
        self.logger = logger
    }

    var isDraining: Bool { registry.withLockedValue { $0.isDraining } }
    var runningCount: Int { registry.withLockedValue { $0.replies.count } }

    /// Starts the reply of `job`. While the server is stopping it is refused: the reply is stored
    /// as failed at once, and ``ChatError/shuttingDown`` thrown.
    func start(_ job: Job) async throws {
        let running = Running(job: job)
        let accepted = registry.withLockedValue { registry in
            guard !registry.isDraining else { return false }
            registry.replies[job.chatID] = running
            return true
        }
        guard accepted else {
            _ = await finish(job, outcome: .failed("The server was shutting down; send the message again.", usage: nil), text: "", stopReason: nil)
            throw ChatError.shuttingDown
        }
        metrics.replyStarted()
        running.attach(Task { await self.run(running) })
    }

    /// Stops the reply in progress in `chat`, and answers the stored, cancelled message. A reply
    /// no instance is running any more (its server died) is marked cancelled as it stands.
    func stop(chat: UUID) async throws -> MessageResponse {
        if let running = registry.withLockedValue({ $0.replies[chat] }), let task = running.task {
            running.stop(.stoppedByUser)
            if let stopped = await task.value { return stopped }
        }
        guard let stopped = try await store.cancelOrphan(in: chat, now: clock.now()) else { throw ChatError.noReplyInProgress }
        bus.replyEnded(stopped)
        return stopped
    }

    /// Lets go of the reply in `chat`, which was just deleted.
    func forget(chat: UUID) {
        registry.withLockedValue { $0.replies[chat] }?.stop(.chatDeleted)
    }

    // MARK: Running a reply

    private enum Outcome {
        case complete(stopReason: String?, usage: ModelUsage)
        case failed(String, usage: ModelUsage?)
        case cancelled
    }

    private func run(_ running: Running) async -> MessageResponse? {
        let job = running.job
        let started = ContinuousClock.now
        let outcome: Outcome
        do {
            let request = try await store.request(for: job, maxTokens: catalog.maxTokens)
            guard catalog.contains(job.model) else {
                throw ProviderError(.notFound, "the model '\(job.model)' is not offered by this server")
            }
            var finished: Outcome?
            var awaitingFirstToken = true
            for try await event in catalog.provider.streamReply(request) {
                switch event {
                case .text(let piece):
                    let receivedAt = ContinuousClock.now
                    if awaitingFirstToken {
                        awaitingFirstToken = false
                        metrics.firstTokenArrived(after: started.duration(to: receivedAt))
                    }
                    running.append(piece)
                    bus.replyDelta(piece, chat: job.chatID, receivedAt: receivedAt)
                case .finished(let stopReason, let usage):
                    finished = .complete(stopReason: stopReason, usage: usage)
                }
            }
            outcome = finished ?? .failed(ProviderError(.interrupted, "the reply ended without finishing").description, usage: nil)
        } catch {
            if Task.isCancelled || error is CancellationError {
                outcome = running.stopReason == .shutdown
                    ? .failed("The server shut down before the reply finished.", usage: nil) : .cancelled
            } else if let providerError = error as? ProviderError {
                metrics.upstreamError(providerError.kind.rawValue)
                outcome = .failed(providerError.description, usage: providerError.usage)
            } else {
                logger.error("reply failed", metadata: ["chat": "\(job.chatID)", "error": "\(String(reflecting: error))"])
                outcome = .failed("The reply could not be completed because of a server error.", usage: nil)
            }
        }

        // Stored outside this task's cancellation, so that a stopped reply is still saved.
        let text = running.text
        let stopReason = running.stopReason
        let final = await Task {
            await self.finish(job, outcome: outcome, text: text, stopReason: stopReason)
        }.value
        registry.withLockedValue { registry in
            if registry.replies[job.chatID] === running { registry.replies[job.chatID] = nil }
        }
        metrics.replyEnded(status: final?.status.rawValue ?? "dropped", inputTokens: final?.inputTokens ?? 0,
                           outputTokens: final?.outputTokens ?? 0)
        logger.info("reply \(final?.status.rawValue ?? "dropped")", metadata: [
            "chat": "\(job.chatID)", "message": "\(job.messageID)",
            "output_tokens": "\(final?.outputTokens ?? 0)", "duration": "\(started.duration(to: .now))",
        ])
        return final
    }

    private func finish(_ job: Job, outcome: Outcome, text: String, stopReason: StopReason?) async -> MessageResponse? {
        guard stopReason != .chatDeleted else { return nil }
        let ending: ReplyStore.Ending
        switch outcome {
        case .complete(let reason, let usage):
            ending = ReplyStore.Ending(status: .complete, text: text, usage: usage, stopReason: reason, error: nil)
        case .failed(let message, let usage):
            ending = ReplyStore.Ending(status: .failed, text: text, usage: usage ?? ModelUsage(), stopReason: nil, error: message)
        case .cancelled:
            ending = ReplyStore.Ending(status: .cancelled, text: text, usage: ModelUsage(), stopReason: nil, error: nil)
        }
        do {
            guard let stored = try await store.finish(job, ending, now: clock.now()) else { return nil }
            bus.replyEnded(stored)
            return stored
        } catch {
            logger.error("could not store a finished reply", metadata: ["chat": "\(job.chatID)", "error": "\(String(reflecting: error))"])
            return nil
        }
    }

    // MARK: Upkeep

    /// Saves the text of every reply in flight (proving this instance alive), lets go of replies
    /// another instance ended, and fails replies whose server stopped saving them.
    func checkpoint() async {
        let now = clock.now()
        let replies = registry.withLockedValue { Array($0.replies.values) }
        for running in replies {
            do {
                let stillStreaming = try await store.checkpoint(running.job.messageID, text: running.unsavedText(), now: now)
                if !stillStreaming { running.stop(.finishedElsewhere) }
            } catch {
                logger.warning("could not save a reply in progress", metadata: ["error": "\(error)"])
            }
        }
        await recoverInterruptedReplies()
    }

    /// Marks failed the replies left `streaming` by a server that stopped without finishing them.
    func recoverInterruptedReplies() async {
        do {
            let recovered = try await store.failAbandoned(olderThan: clock.now().addingTimeInterval(-settings.replyLease), now: clock.now())
            for message in recovered { bus.replyEnded(message) }
            if !recovered.isEmpty { logger.notice("marked \(recovered.count) interrupted reply(ies) as failed") }
        } catch {
            logger.warning("could not recover interrupted replies", metadata: ["error": "\(error)"])
        }
    }

    /// Refuses new replies, gives those in flight `timeout` to finish, then stops the rest,
    /// which are stored as failed with their partial text.
    func drain(timeout: TimeInterval) async {
        let replies = registry.withLockedValue { registry in
            registry.isDraining = true
            return Array(registry.replies.values)
        }
        guard !replies.isEmpty else { return }
        logger.notice("waiting up to \(timeout)s for \(replies.count) reply(ies) to finish")
        let tasks = replies.compactMap(\.task)
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for task in tasks { _ = await task.value }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                return false
            }
            let finishedInTime = await group.next() ?? true
            if !finishedInTime {
                for running in replies { running.stop(.shutdown) }
            }
            group.cancelAll()
        }
    }
}
