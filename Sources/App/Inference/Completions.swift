import Fluent
import Foundation
import NIOCore
import Providers
import Vapor

/// `/v1/chat/completions`: one reply of any configured model, in OpenAI's format, under the
/// caller's reply rate limit and daily quota, counted in their usage like a chat reply, and stored
/// nowhere else. A streamed reply runs in a task the server owns (shutdown ends it, a client that
/// leaves stops it) and is relayed by ``CompletionRun``.
struct Completions: Sendable {
    let catalog: ModelCatalog
    let usage: UsageLedger
    let limiter: RateLimiter
    let replyLimit: RateLimitPolicy
    let tasks: OwnedTasks
    let metrics: AppMetrics
    /// This instance's ``RelayHeader`` value: a request that carries it came back to its sender.
    let relayID: String
    let clock: any WallClock
    /// How often a silent stream gets a keep-alive comment (`SSE_KEEPALIVE_INTERVAL`).
    let keepAlive: Duration
    /// Where each completion's span goes (``ModelCallTrace``); nil: tracing is off.
    let telemetry: Telemetry?

    /// How long a completion has to start its answer (streamed) or give it whole.
    static let timeout: Duration = .seconds(600)

    /// Answers `spec` for `user`. Everything that can be refused is refused before the model is
    /// asked (nothing counted): a loop, an unknown model, images the model cannot take, the rate
    /// limit, the quota. A failure before the answer's first piece is an HTTP error; after it, an
    /// error event.
    func respond(to spec: CompletionSpec, for user: User, relayedBy headers: [String], on req: Request) async throws -> Response {
        let relayedBy = try Self.relayChain(headers)
        if relayedBy.contains(relayID) { throw CompletionError.loop }
        guard let route = catalog.route(spec.model) else { throw CompletionError.modelNotFound(spec.model) }
        try check(spec)
        let userID = try user.requireID()
        try await limiter.check(replyLimit, key: userID.lowercased, for: req)
        let estimate = min(spec.promptEstimate, catalog.contextWindow(of: spec.model))
        // The operator's MAX_TOKENS bounds what a caller may ask for; the quota holds the most the
        // reply may cost (its prompt, its answer and its thinking) until it ends.
        let maxTokens = min(spec.maxTokens ?? catalog.maxTokens, catalog.maxTokens)
        let thinking = spec.temperature == nil ? catalog.thinkingBudget(of: spec.model) : nil
        let reservation = try await usage.reserve(for: userID, quota: usage.quota(of: user), estimate: estimate + maxTokens + (thinking ?? 0),
                                                  on: req.db)
        let request = ModelRequest(
            model: route.model, system: spec.system, messages: spec.messages, maxTokens: maxTokens, thinkingBudget: thinking,
            temperature: spec.temperature, stopSequences: spec.stop, relayedBy: relayedBy
        )
        let chunks = CompletionChunks(model: spec.model, created: clock.now(), includeUsage: spec.includeUsage)
        let run = CompletionRun(chunks: chunks, promptEstimate: estimate, streamingOn: spec.stream ? req.eventLoop : nil,
                                keepAlive: keepAlive)
        let trace = ModelCallTrace.start(telemetry, model: spec.model, providerModel: route.model, upstream: .init(route), purpose: .completion)
        trace.asked(request)
        let ending = Ending(usage: usage, metrics: metrics, reservation: reservation, model: spec.model, userID: userID, db: req.db,
                            logger: req.logger, trace: trace)
        metrics.replyStarted()
        let provider = route.provider
        let firstToken = FirstTokenClock(started: .now, metrics: metrics, trace: trace)
        let upstream: @Sendable () -> Task<ModelCompletion, any Error> = {
            Task {
                try await provider.streamReply(request, onRetry: trace.retrying) { event in
                    switch event {
                    case .text, .reasoning: firstToken.arrived(at: .now)
                    case .reasoningSignature, .usage, .toolCall: break
                    }
                    run.receive(event)
                }
            }
        }
        guard spec.stream else {
            let outcome = await run.run(upstream())
            let usage = await ending.settle(run, outcome)
            let completion = try outcome.mapError { CompletionError.upstream($0) }.get()
            let (text, reasoning) = run.output
            var headers = HTTPHeaders()
            headers.contentType = .json
            return Response(status: .ok, headers: headers, body: .init(buffer: chunks.completion(
                text: text, reasoning: reasoning, finishReason: CompletionChunks.finishReason(completion.stopReason), usage: usage
            )))
        }
        let started = tasks.run {
            let outcome = await run.run(upstream())
            let usage = await ending.settle(run, outcome)
            var tail = ByteBuffer()
            switch outcome {
            case .success(let completion):
                chunks.writeEnd(finishReason: CompletionChunks.finishReason(completion.stopReason), usage: usage, into: &tail)
            case .failure(let error):
                CompletionChunks.writeError(OpenAIError(CompletionError.upstream(error).problem.body), into: &tail)
            }
            run.finish(outcome, tail: tail)
        }
        guard started else {
            await ending.settle(run, Result<ModelCompletion, any Error>.failure(CancellationError()))
            throw CompletionError.shuttingDown
        }
        if case .ended(.failure(let error)) = await run.start() { throw CompletionError.upstream(error) }
        // A response that never starts (its client left first) must not leave the reply running.
        run.expectAttach(within: .seconds(30))
        let headers: HTTPHeaders = ["Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"]
        // The callback form of the body: the stream has no task of its own (see ``CompletionRun``).
        return Response(status: .ok, headers: headers, body: .init(stream: { writer in run.attach(writer) }))
    }

    /// The instances a request passed through, from its ``RelayHeader`` values (one per header, or
    /// joined with commas by a proxy): ids as this server makes them (UUIDs), anything else dropped;
    /// more than ``maxRelays`` is a loop whatever the ids.
    static func relayChain(_ headers: [String]) throws -> [String] {
        let ids = headers.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.utf8.count == 36 && UUID(uuidString: $0) != nil }
        guard ids.count <= maxRelays else { throw CompletionError.loop }
        return ids
    }

    static let maxRelays = 16

    /// 400 for what the model cannot take: images without vision, or (on Anthropic's API) over
    /// 5 MB or 8,000 pixels a side; a temperature over 1 on Anthropic's API.
    private func check(_ spec: CompletionSpec) throws {
        let anthropic = catalog.isAnthropic(spec.model)
        if let image = spec.images.first, !catalog.capabilities(of: spec.model).contains(.vision) {
            throw CompletionError.unsupported(field: image.field, "\(spec.model) cannot see images; choose a model with vision.")
        }
        if anthropic, let image = spec.images.first(where: { $0.data.count > Attachments.anthropicMaxImageBytes }) {
            throw CompletionError.unsupported(field: image.field, "The image is over 5 MB, the most \(spec.model) takes.")
        }
        if anthropic, let image = spec.images.first(where: { max($0.width, $0.height) > Attachments.anthropicMaxImageSide }) {
            throw CompletionError.unsupported(field: image.field, "The image is over 8,000 pixels a side, the most \(spec.model) takes.")
        }
        if anthropic, let temperature = spec.temperature, temperature > 1 {
            throw RequestError.invalidFields(["temperature": ["\(spec.model) takes a temperature from 0 to 1."]])
        }
    }
}

/// How a completion ends, whichever way: its usage recorded and its quota reservation dropped in
/// one write, and the metrics told. The write runs in a task of its own, so that a handler that
/// was cancelled (its request timed out) still records what its reply consumed.
private struct Ending: Sendable {
    let usage: UsageLedger
    let metrics: AppMetrics
    let reservation: UUID?
    let model: String
    let userID: UUID
    let db: any Database
    let logger: Logger
    let trace: ModelCallTrace

    @discardableResult
    func settle(_ run: CompletionRun, _ outcome: Result<ModelCompletion, any Error>) async -> ModelUsage {
        let consumed = run.accounted(outcome)
        let status: String
        switch outcome {
        case .success: status = "completed"
        case .failure(let error as ProviderError):
            status = "failed"
            metrics.upstreamError(error.kind.rawValue)
            logger.warning("a completion failed upstream", metadata: ["model": "\(model)", "error": "\(error)"])
        case .failure: status = "stopped"
        }
        metrics.replyEnded(status: status, inputTokens: consumed.inputTokens, outputTokens: consumed.outputTokens)
        if case .failure(let error) = outcome, status == "failed" { trace.failed(error) }
        trace.end(status: status, stopReason: try? outcome.get().stopReason, usage: consumed)
        let (usage, reservation, model, userID, db, logger) = (self.usage, self.reservation, self.model, self.userID, self.db, self.logger)
        await Task {
            do {
                try await usage.settle(reservation, usage: consumed, model: model, for: userID, on: db)
            } catch {
                logger.error("a completion's usage could not be recorded", metadata: ["error": "\(String(reflecting: error))"])
            }
        }.value
        return consumed
    }
}
