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
/// burst of pieces costs one wake-up. One write is in flight at a time (what comes meanwhile waits
/// and goes in the next); a client that lets more than ``maxPendingBytes`` wait is too slow, and
/// the reply stops. Until the first piece (or the end), the response has not started, so that a
/// failure before any output is answered with its own HTTP status.
final class CompletionRun: Sendable {
    /// How the run stands when the handler stops waiting for its first output.
    enum Start: Sendable {
        /// Output came: the stream starts with it.
        case streaming
        /// It ended before any output, as it says.
        case ended(Result<ModelCompletion, any Error>)
    }

    static let maxPendingBytes = 4 << 20

    private struct State {
        var text = ""
        var reasoning = ""
        var usage = ReplyUsage()
        var pending = ByteBuffer()
        var hasOutput = false
        var ended = false
        var endWritten = false
        var writer: (any BodyStreamWriter)?
        var drainScheduled = false
        /// A write is on its way to the socket.
        var writing = false
        var clientGone = false
        var upstream: Task<ModelCompletion, any Error>?
        var waiting: CheckedContinuation<Start, Never>?
        var outcome: Result<ModelCompletion, any Error>?
        /// Bytes went to the client since the last keep-alive tick.
        var wroteSinceTick = false
        var keepAlive: RepeatedTask?

        /// Whether a drain must be scheduled now: bytes to write (or the end), a writer to write
        /// them to, no write in flight, none scheduled.
        mutating func scheduleDrain() -> Bool {
            guard writer != nil, !drainScheduled, !writing, pending.readableBytes > 0 || (ended && !endWritten) else { return false }
            drainScheduled = true
            return true
        }

        /// The client is gone (or too slow): the upstream request to cancel, and the handler to
        /// wake if it still waits.
        mutating func abandon() -> (Task<ModelCompletion, any Error>?, CheckedContinuation<Start, Never>?) {
            clientGone = true
            defer { waiting = nil }
            return (upstream, waiting)
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
        let (wake, schedule, tooSlow) = state.withLockedValue { state -> (CheckedContinuation<Start, Never>?, Bool, Task<ModelCompletion, any Error>?) in
            switch event {
            case .text(let piece):
                state.text += piece
                if streaming { chunks.writePiece(piece, reasoning: false, into: &state.pending) }
            case .reasoning(let piece):
                state.reasoning += piece
                if streaming { chunks.writePiece(piece, reasoning: true, into: &state.pending) }
            case .usage(let usage, let final):
                state.usage.note(usage, final: final)
                return (nil, false, nil)
            case .reasoningSignature, .toolCall:
                return (nil, false, nil)
            }
            state.hasOutput = true
            if state.pending.readableBytes > Self.maxPendingBytes, !state.clientGone {
                let (upstream, wake) = state.abandon()
                return (wake, false, upstream)
            }
            let wake = state.waiting
            state.waiting = nil
            return (wake, state.scheduleDrain(), nil)
        }
        wake?.resume(returning: .streaming)
        tooSlow?.cancel()
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

    /// What the reply consumed by now: the provider's figures where it sent them, else estimated
    /// from what it wrote (its reasoning included).
    func accounted(_ outcome: Result<ModelCompletion, any Error>) -> ModelUsage {
        let completion = try? outcome.get()
        return state.withLockedValue { $0.usage.accounted(text: $0.reasoning + $0.text, completion: completion).usage }
    }

    /// The answer and the reasoning, whole.
    var output: (text: String, reasoning: String) { state.withLockedValue { ($0.text, $0.reasoning) } }

    /// Waits for the first output or the end, whichever comes first. A handler cancelled meanwhile
    /// (its request timed out) stops the reply.
    func start() async -> Start {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLockedValue { state -> Start? in
                    if state.hasOutput { return .streaming }
                    if let outcome = state.outcome { return .ended(outcome) }
                    if state.clientGone { return .ended(.failure(CancellationError())) }
                    state.waiting = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            clientLeft()
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

    /// A response that has not started writing `within` this long never will (its client left
    /// before it began): the reply stops.
    func expectAttach(within limit: Duration) {
        eventLoop?.scheduleTask(in: TimeAmount(limit)) { [weak self] in
            guard let self, state.withLockedValue({ $0.writer == nil }) else { return }
            clientLeft()
        }
    }

    private func drainSoon() {
        eventLoop?.execute { self.drain() }
    }

    /// Writes what is pending (on the event loop), one write at a time.
    private func drain() {
        let (writer, bytes, end) = state.withLockedValue { state -> ((any BodyStreamWriter)?, ByteBuffer, Bool) in
            state.drainScheduled = false
            guard let writer = state.writer, !state.writing else { return (nil, ByteBuffer(), false) }
            let bytes = state.pending
            state.pending = ByteBuffer()
            let end = state.ended && !state.endWritten
            if end {
                state.endWritten = true
                state.keepAlive?.cancel()
            }
            if bytes.readableBytes > 0 {
                state.writing = true
                state.wroteSinceTick = true
            }
            return (writer, bytes, end)
        }
        guard let writer, let eventLoop else { return }
        if bytes.readableBytes > 0 {
            let written = eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { result in
                switch result {
                case .success:
                    let again = self.state.withLockedValue { state in
                        state.writing = false
                        return state.scheduleDrain()
                    }
                    if again { self.drain() }
                case .failure:
                    self.state.withLockedValue { $0.writing = false }
                    self.clientLeft()
                }
            }
            writer.write(.buffer(bytes), promise: written)
        }
        if end { writer.write(.end, promise: nil) }
    }

    /// A keep-alive tick (on the event loop): a comment when nothing was written since the last.
    private func tick() {
        let silent = state.withLockedValue { state -> (any BodyStreamWriter)? in
            defer { state.wroteSinceTick = false }
            return state.wroteSinceTick || state.endWritten || state.writing ? nil : state.writer
        }
        guard let silent, let eventLoop else { return }
        let written = eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in self.clientLeft() }
        silent.write(.buffer(ByteBuffer(staticString: ": keep-alive\n\n")), promise: written)
    }

    /// The client is gone: the upstream request stops (and the reply is accounted as it stood).
    private func clientLeft() {
        let (upstream, wake) = state.withLockedValue { $0.abandon() }
        upstream?.cancel()
        wake?.resume(returning: .ended(.failure(CancellationError())))
    }
}
