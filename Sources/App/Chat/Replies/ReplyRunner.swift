import Fluent
import Foundation
import NIOConcurrencyHelpers
import Providers
import Vapor

/// Runs assistant replies on the server, owned by no client connection: a reply goes on when
/// every stream closes, and is stored once when it ends — `complete`, `failed` (with its partial
/// text) or `cancelled`. Each reply runs in three steps: ``stream(_:started:)`` relays its text as it
/// arrives — and, when the model calls the chat's tools, calls them and asks it again, round after
/// round (``ToolBox``) — and answers an ``ReplyOutcome``; ``finish(_:_:)`` stores it; ``release(_:_:started:)``
/// lets it go. Replies in flight are saved every `checkpointInterval` (which also proves to other
/// instances that this one is alive); on shutdown they get `drainTimeout` to finish.
final class ReplyRunner: Sendable {
    let replies: RunningReplies
    let bus: any ChatEventBus
    /// Told when a reply's end moves its chat in its owner's list.
    let lists: ChatLists
    let catalog: ModelCatalog
    let store: ReplyStore
    let clock: any WallClock
    let settings: ChatSettings
    let logger: Logger
    let metrics: AppMetrics
    let titler: ChatTitler
    let tools: ToolCatalog
    let usage: UsageLedger
    /// Where each reply's span goes (``ModelCallTrace``); nil: tracing is off.
    let telemetry: Telemetry?
    /// Titles being asked for after replies ended.
    let followUps = OwnedTasks()

    init(replies: RunningReplies, bus: any ChatEventBus, lists: ChatLists, catalog: ModelCatalog, tools: ToolCatalog, usage: UsageLedger, store: ReplyStore,
         clock: any WallClock, settings: ChatSettings, logger: Logger, metrics: AppMetrics, telemetry: Telemetry?) {
        self.replies = replies
        self.telemetry = telemetry
        self.tools = tools
        self.usage = usage
        self.bus = bus
        self.lists = lists
        self.catalog = catalog
        self.store = store
        self.clock = clock
        self.settings = settings
        self.logger = logger
        self.metrics = metrics
        titler = ChatTitler(catalog: catalog, bus: bus, lists: lists, database: store.database, logger: logger, telemetry: telemetry)
    }

    var isDraining: Bool { replies.isDraining }
    var runningCount: Int { replies.count }

    /// Starts the reply of `job`. While the server is stopping it is refused: the reply is stored
    /// as failed at once, and ``ChatError/shuttingDown`` thrown.
    func start(_ job: ReplyJob) async throws {
        let reply = RunningReply(job: job, maxBytes: settings.replyMaxBytes)
        guard replies.register(reply) else {
            _ = await finish(reply, .failed("The server was shutting down; send the message again."))
            throw ChatError.shuttingDown
        }
        metrics.replyStarted()
        reply.attach(Task { await self.run(reply) })
    }

    /// Stops the reply in progress in `chat`, wherever it runs, and answers the stored, cancelled
    /// message. A reply no instance runs any more (its server died) is marked cancelled as it stands.
    func stop(chat: UUID) async throws -> MessageResponse {
        if let reply = replies.reply(in: chat) {
            reply.stop(.stoppedByUser)
            if let stored = await reply.result() { return stored }
        } else if let streaming = try await store.streamingReply(in: chat), await bus.requestStop(in: chat),
                  let stored = try await store.awaitEnd(of: streaming, within: .seconds(2)) {
            return stored
        }
        guard let stopped = try await store.cancelOrphan(in: chat, now: clock.now()) else { throw ChatError.noReplyInProgress }
        bus.replyEnded(stopped)
        return stopped
    }

    // MARK: Running a reply

    private func run(_ reply: RunningReply) async {
        let started = ContinuousClock.now
        let trace = startTrace(of: reply.job)
        let outcome = await stream(reply, started: started, trace: trace)
        // Stored outside this task's cancellation, so that a stopped reply is still saved.
        let stored = await Task { await self.finish(reply, outcome) }.value
        trace.end(status: stored?.status.rawValue ?? "dropped", stopReason: stored?.stopReason, usage: stored.map {
            ModelUsage(inputTokens: $0.inputTokens, outputTokens: $0.outputTokens, cacheReadInputTokens: $0.cacheReadInputTokens,
                       cacheCreationInputTokens: $0.cacheCreationInputTokens)
        })
        // Started before the reply is let go, so that a shutdown waiting for the reply sees it.
        if reply.job.needsTitle, stored?.status == .complete {
            followUps.run { [titler, chat = reply.job.chatID] in await titler.titleIfNeeded(chat) }
        }
        release(reply, stored, started: started)
    }

    /// Asks the model and relays each piece of text to the streams as it arrives. When it calls
    /// tools (the chat's, ``ToolBox``), calls them one after another, relays each call and result,
    /// and asks it again with the results — up to `TOOL_MAX_STEPS` rounds, or until the user's
    /// quota is spent; then once more with `tool_choice: none`, and that answer ends the reply.
    private func stream(_ reply: RunningReply, started: ContinuousClock.Instant, trace: ModelCallTrace) async -> ReplyOutcome {
        let job = reply.job
        do {
            guard let route = catalog.route(job.model) else {
                throw ProviderError(.notFound, "the model '\(job.model)' is not offered by this server")
            }
            let prepared = try await store.request(for: job, model: route.model, catalog: catalog)
            reply.prepared(omittedMessages: prepared.omittedMessages, promptEstimate: prepared.promptEstimate)
            var request = prepared.model
            let toolBox = job.tools.isEmpty || !catalog.capabilities(of: job.model).contains(.tools) ? nil : tools.toolBox(for: job.tools, user: job.userID)
            if let toolBox, !toolBox.isEmpty { request.tools = toolBox.modelTools }
            trace.asked(request)
            let firstToken = FirstTokenClock(started: started, metrics: metrics, trace: trace)
            var steps = 0
            while true {
                let calls = NIOLockedValueBox<[ModelToolCall]>([])
                let completion = try await route.provider.streamReply(request, onRetry: trace.retrying) { [bus] event in
                    switch event {
                    case .text(let piece):
                        let now = ContinuousClock.now
                        firstToken.arrived(at: now)
                        if let delta = reply.append(piece, receivedAt: now) { bus.replyDelta(delta) }
                    case .reasoning(let piece):
                        let now = ContinuousClock.now
                        firstToken.arrived(at: now)
                        if let delta = reply.append(piece, kind: .reasoning, receivedAt: now) { bus.replyDelta(delta) }
                    case .reasoningSignature(let signature):
                        reply.signReasoning(signature)
                    case .usage(let usage, let final):
                        reply.noteUsage(usage, final: final)
                    case .toolCall(let call):
                        calls.withLockedValue { $0.append(call) }
                    }
                }
                let called = calls.withLockedValue { $0 }
                guard let toolBox, !toolBox.isEmpty, !called.isEmpty, request.toolChoice == .auto else { return .complete(completion) }
                let output = reply.roundOutput
                let results = try await callTools(called, of: reply, in: toolBox, trace: trace)
                request.messages.append(ModelMessage(role: .assistant, content: output.text, toolCalls: called,
                                                     reasoning: output.reasoning, reasoningSignature: output.signature))
                request.messages.append(ModelMessage(role: .user, content: "", toolResults: results))
                let added = ([output.reasoning ?? "", output.text] + called.map(\.arguments.jsonText) + results.map(\.content))
                    .reduce(0) { $0 + ConversationWindow.estimatedTokens($1) }
                reply.endRound(output: (output.reasoning ?? "") + output.text, completion: completion,
                               nextPrompt: reply.usage.promptEstimate + added)
                steps += 1
                if steps >= tools.settings.maxSteps {
                    request.toolChoice = .none
                } else if try await quotaSpent(by: reply) {
                    request.toolChoice = .none
                }
            }
        } catch {
            let outcome = ReplyOutcome(error, stopReason: reply.stopReason)
            if case .failed = outcome { trace.failed(error) }
            switch outcome {
            case .failed(let message) where !(error is ProviderError) && !(error is CancellationError):
                logger.error("reply failed", metadata: ["chat": "\(job.chatID)", "error": "\(String(reflecting: error))", "reason": "\(message)"])
            default:
                if let providerError = error as? ProviderError { metrics.upstreamError(providerError.kind.rawValue) }
            }
            return outcome
        }
    }

    /// Stores how the reply ended and tells the streams; nil when it is not stored (its chat is gone).
    /// While the database is unavailable the text stays here and the write is tried again, for up
    /// to `replyLease` (past it, another instance may take the reply for lost) or until shutdown.
    private func finish(_ reply: RunningReply, _ outcome: ReplyOutcome) async -> MessageResponse? {
        let round = reply.roundOutput
        let ending = outcome.ending(text: reply.text, reasoning: reply.reasoning, reasoningSignature: reply.reasoningSignature,
                                    toolCalls: reply.toolCalls, usage: reply.usage, roundOutput: (round.reasoning ?? "") + round.text,
                                    omittedMessages: reply.omittedMessages)
        let giveUpAt = clock.now().adding(settings.replyLease)
        var pause = Duration.milliseconds(100)
        while true {
            do {
                let stored = try await store.finish(reply.job, ending, now: clock.now())
                lists.changed(reply.job.userID)
                guard let stored else { return nil }
                bus.replyEnded(stored)
                return stored
            } catch where DatabaseUnavailable.matches(error) && !(error is DatabaseClosed)
                && !reply.isShuttingDown && clock.now() < giveUpAt {
                logger.warning("database unavailable: the reply's end is kept and stored when it is back",
                               metadata: ["chat": "\(reply.job.chatID)", "error": "\(DatabaseSetup.describe(error))"])
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            } catch {
                logger.error("could not store a finished reply", metadata: ["chat": "\(reply.job.chatID)", "error": "\(String(reflecting: error))"])
                return nil
            }
        }
    }

    /// Lets the reply go: out of the registry, its waiters woken, counted and logged.
    private func release(_ reply: RunningReply, _ stored: MessageResponse?, started: ContinuousClock.Instant) {
        replies.remove(reply)
        reply.finished(stored)
        metrics.replyEnded(status: stored?.status.rawValue ?? "dropped", inputTokens: stored?.inputTokens ?? 0,
                           outputTokens: stored?.outputTokens ?? 0)
        logger.info("reply \(stored?.status.rawValue ?? "dropped")", metadata: [
            "chat": "\(reply.job.chatID)", "message": "\(reply.job.messageID)",
            "output_tokens": "\(stored?.outputTokens ?? 0)", "duration": "\(started.duration(to: .now))",
        ])
    }

    // MARK: Upkeep

    /// Saves the text of every reply in flight (proving this instance alive) and lets go of
    /// replies another instance or path ended. Text is marked saved only once the write succeeded,
    /// so a failed save is tried again at the next checkpoint.
    func checkpoint() async {
        let now = clock.now()
        for reply in replies.all {
            await reply.saves.run { [store, logger] in
                let unsaved = reply.unsaved()
                do {
                    let stillStreaming = try await store.checkpoint(reply.job.messageID, text: unsaved?.text, reasoning: unsaved?.reasoning,
                                                                    toolCalls: unsaved?.toolCalls, now: now)
                    if let unsaved { reply.saved(unsaved) }
                    if !stillStreaming { reply.stop(.finishedElsewhere) }
                } catch {
                    logger.warning("could not save a reply in progress", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Marks failed the replies left `streaming` by a server that stopped without finishing them
    /// (no heartbeat for `replyLease`), and tells their streams.
    func recoverInterruptedReplies() async {
        do {
            let now = clock.now()
            let recovered = try await store.failAbandoned(olderThan: now.adding(.zero - settings.replyLease), now: now)
            for message in recovered { bus.replyEnded(message) }
            if !recovered.isEmpty { logger.notice("marked \(recovered.count) interrupted reply(ies) as failed") }
        } catch {
            logger.warning("could not recover interrupted replies", metadata: ["error": "\(error)"])
        }
    }

    /// Refuses new replies, gives those in flight `timeout` to finish, then stops the rest, which
    /// are stored as failed with their partial text; titles still being asked for get what is left
    /// of `timeout`, then are given up (the chat's next complete reply asks again). Returns once
    /// every reply is stored and nothing more will touch the database.
    func drain(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        await stopReplies(by: deadline)
        await followUps.close(by: deadline)
    }

    private func stopReplies(by deadline: ContinuousClock.Instant) async {
        let running = replies.beginDraining()
        guard !running.isEmpty else { return }
        logger.notice("waiting up to \(ContinuousClock.now.duration(to: deadline)) for \(running.count) reply(ies) to finish")
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for reply in running { _ = await reply.result() }
                return true
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return false
            }
            // Past the drain time, the rest are stopped; the group then ends as they are stored.
            if await group.next() == false {
                for reply in running { reply.stop(.shutdown) }
            }
            group.cancelAll()
        }
    }
}
