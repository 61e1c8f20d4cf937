import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Providers
import Vapor

/// One `/v1/chat/completions` reply while it runs: what the model wrote so far (the answer, the
/// reasoning, the usage it reported) and, when streamed, its relay to the client.
///
/// The provider hands events over on its connection's event loop; a streamed piece is encoded
/// there, at once, into a pending buffer (``CompletionChunks``), and one drain on the client's
/// event loop writes whatever is pending in one write and one flush: no task per piece, and a
/// burst of pieces costs one wake-up. Until the first piece (or the end), the response has not
/// started, so that a failure before any output is answered with its own HTTP status.
final class CompletionRun: Sendable {
    /// How the run stands when the handler stops waiting for its first output.
    enum Start: Sendable {
        /// Output came: the stream starts with it.
        case streaming
        /// It ended before any output, as it says.
        case ended(Result<ModelCompletion, any Error>)
    }

    private struct State {
        var text = ""
        var reasoning = ""
        var usage = ReplyUsage()
        var pending = ByteBuffer()
        var hasOutput = false
        var ended = false
        var writer: (any BodyStreamWriter)?
        var drainScheduled = false
        var clientGone = false
        var upstream: Task<ModelCompletion, any Error>?
        var waiting: CheckedContinuation<Start, Never>?
        var outcome: Result<ModelCompletion, any Error>?
        var endWritten = false
        /// Bytes went to the client since the last keep-alive tick.
        var wroteSinceTick = false
        var keepAlive: RepeatedTask?

        /// Whether a drain must be scheduled now: bytes to write (or the end), a writer to write
        /// them to, none scheduled.
        mutating func scheduleDrain() -> Bool {
            guard writer != nil, !drainScheduled, pending.readableBytes > 0 || (ended && !endWritten) else { return false }
            drainScheduled = true
            return true
        }
    }

    let chunks: CompletionChunks
    /// The client's event loop; nil for a reply answered whole.
    private let eventLoop: (any EventLoop)?
    /// A stream with nothing to say for this long gets a comment, so that a client that left is
    /// noticed (its write fails) even while the model is silent.
    private let keepAlive: Duration
    private let state: NIOLockedValueBox<State>

    init(chunks: CompletionChunks, promptEstimate: Int, streamingOn eventLoop: (any EventLoop)?, keepAlive: Duration = .seconds(15)) {
        self.chunks = chunks
        self.eventLoop = eventLoop
        self.keepAlive = keepAlive
        var initial = State()
        initial.usage.promptEstimate = promptEstimate
        if eventLoop != nil { chunks.writeRole(into: &initial.pending) }
        state = NIOLockedValueBox(initial)
    }

    /// Takes one event of the provider's (any thread, one at a time).
    func receive(_ event: ModelStreamEvent) {
        let streaming = eventLoop != nil
        let (wake, schedule) = state.withLockedValue { state -> (CheckedContinuation<Start, Never>?, Bool) in
            switch event {
            case .text(let piece):
                state.text += piece
                if streaming { chunks.writePiece(piece, reasoning: false, into: &state.pending) }
            case .reasoning(let piece):
                state.reasoning += piece
                if streaming { chunks.writePiece(piece, reasoning: true, into: &state.pending) }
            case .usage(let usage, let final):
                state.usage.note(usage, final: final)
                return (nil, false)
            case .reasoningSignature, .toolCall:
                return (nil, false)
            }
            state.hasOutput = true
            let wake = state.waiting
            state.waiting = nil
            return (wake, state.scheduleDrain())
        }
        wake?.resume(returning: .streaming)
        if schedule { drainSoon() }
    }

    /// Runs the upstream request in `upstream`, which a client that leaves cancels (the provider
    /// closes its request).
    func run(_ upstream: Task<ModelCompletion, any Error>) async -> Result<ModelCompletion, any Error> {
        let gone = state.withLockedValue { state in
            state.upstream = upstream
            return state.clientGone
        }
        if gone { upstream.cancel() }
        return await withTaskCancellationHandler { await upstream.result } onCancel: { upstream.cancel() }
    }

    /// What the reply consumed by now: the provider's figures where it sent them, else estimated.
    func accounted(_ outcome: Result<ModelCompletion, any Error>) -> ModelUsage {
        let completion = try? outcome.get()
        return state.withLockedValue { $0.usage.accounted(text: $0.text, completion: completion).usage }
    }

    /// The answer and the reasoning, whole.
    var output: (text: String, reasoning: String) { state.withLockedValue { ($0.text, $0.reasoning) } }

    /// Waits for the first output or the end, whichever comes first.
    func start() async -> Start {
        await withCheckedContinuation { continuation in
            let now = state.withLockedValue { state -> Start? in
                if state.hasOutput { return .streaming }
                if let outcome = state.outcome { return .ended(outcome) }
                state.waiting = continuation
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }

    /// Ends the stream with its last bytes (the end chunks, or an error event).
    func finish(_ outcome: Result<ModelCompletion, any Error>, tail: ByteBuffer) {
        let (wake, schedule) = state.withLockedValue { state -> (CheckedContinuation<Start, Never>?, Bool) in
            var tail = tail
            state.pending.writeBuffer(&tail)
            state.ended = true
            state.outcome = outcome
            let wake = state.waiting
            state.waiting = nil
            return (wake, state.scheduleDrain())
        }
        wake?.resume(returning: .ended(outcome))
        if schedule { drainSoon() }
    }

    /// Starts writing to the client (on its event loop): what is pending at once, the rest as it comes.
    func attach(_ writer: any BodyStreamWriter) {
        let interval = TimeAmount(keepAlive)
        let ticks = eventLoop?.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in self?.tick() }
        let schedule = state.withLockedValue { state in
            state.writer = writer
            state.keepAlive = ticks
            return state.scheduleDrain()
        }
        if schedule { drainSoon() }
    }

    /// A keep-alive tick (on the event loop): a comment when nothing was written since the last.
    private func tick() {
        let silent = state.withLockedValue { state -> (any BodyStreamWriter)? in
            defer { state.wroteSinceTick = false }
            return state.wroteSinceTick || state.endWritten ? nil : state.writer
        }
        guard let silent, let eventLoop else { return }
        let written = eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in self.clientLeft() }
        silent.write(.buffer(ByteBuffer(staticString: ": keep-alive\n\n")), promise: written)
    }

    private func drainSoon() {
        eventLoop?.execute { self.drain() }
    }

    private func drain() {
        let (writer, bytes, ended) = state.withLockedValue { state -> ((any BodyStreamWriter)?, ByteBuffer, Bool) in
            state.drainScheduled = false
            let bytes = state.pending
            state.pending = ByteBuffer()
            let end = state.ended && !state.endWritten && state.writer != nil
            if end {
                state.endWritten = true
                state.keepAlive?.cancel()
            }
            if bytes.readableBytes > 0 { state.wroteSinceTick = true }
            return (state.writer, bytes, end)
        }
        guard let writer, let eventLoop else { return }
        if bytes.readableBytes > 0 {
            let written = eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { _ in self.clientLeft() }
            writer.write(.buffer(bytes), promise: written)
        }
        if ended { writer.write(.end, promise: nil) }
    }

    /// The client is gone: the upstream request stops (and the reply is accounted as it stood).
    private func clientLeft() {
        let upstream = state.withLockedValue { state in
            state.clientGone = true
            return state.upstream
        }
        upstream?.cancel()
    }
}
