import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Vapor

/// One open event stream, written on its connection's event loop with no task of its own: the hub
/// hands it frames (in publish order, through `eventLoop.execute`), it drops what the reader already
/// has, and writes the rest. Frames that arrive before the response starts wait until the replay is
/// written. A reader with `maxPendingWrites` writes unflushed is too slow: its stream ends, and it
/// resumes by event id.
final class StreamSubscriber: Sendable {
    let id: Int
    let chat: UUID
    let eventLoop: any EventLoop
    let userID: String
    let expiresAt: Date?
    let createdAt: Date
    private let maxPendingWrites: Int
    private let metrics: AppMetrics
    private let onEnd: @Sendable (StreamSubscriber) -> Void
    /// Touched only on `eventLoop` (the lock is never contended; it makes that checkable).
    private let state: NIOLockedValueBox<State>

    private struct State {
        var writer: (any BodyStreamWriter)?
        /// Frames that came before the replay was written.
        var waiting: [StreamFrame] = []
        var position = StreamPosition.start
        var pendingWrites = 0
        var ended = false
    }

    init(id: Int, chat: UUID, userID: String, eventLoop: any EventLoop, expiresAt: Date?, createdAt: Date, maxPendingWrites: Int,
         metrics: AppMetrics, onEnd: @escaping @Sendable (StreamSubscriber) -> Void) {
        self.id = id
        self.chat = chat
        self.userID = userID
        self.metrics = metrics
        self.eventLoop = eventLoop
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.maxPendingWrites = maxPendingWrites
        self.onEnd = onEnd
        state = NIOLockedValueBox(State())
    }

    /// Hands `frame` over; call in publish order (the hub does, under its lock).
    func deliver(_ frame: StreamFrame) {
        eventLoop.execute { self.handle(frame) }
    }

    /// Starts the response: writes the replay, which leaves the reader at `position`, then whatever
    /// arrived meanwhile. Called on the event loop by the response body.
    func attach(_ writer: any BodyStreamWriter, replay: ByteBuffer, position: StreamPosition) {
        let waiting: [StreamFrame] = state.withLockedValue { state in
            state.writer = writer
            state.position = position
            defer { state.waiting = [] }
            return state.waiting
        }
        if state.withLockedValue({ $0.ended }) {
            writer.write(.end, promise: nil)
            return
        }
        write(replay)
        waiting.forEach(handle)
    }

    /// Ends the stream (at most once) and tells the hub.
    func end(with problem: HTTPProblem? = nil) {
        eventLoop.execute {
            if let problem { self.handle(.end(problem)) } else { self.finish() }
        }
    }

    private enum Step {
        case drop, wait, overflow, write(ByteBuffer, ContinuousClock.Instant?), endWith(ByteBuffer)
    }

    private func handle(_ frame: StreamFrame) {
        let step: Step = state.withLockedValue { state in
            guard !state.ended else { return .drop }
            guard state.writer != nil else {
                state.waiting.append(frame)
                return state.waiting.count > maxPendingWrites ? .overflow : .wait
            }
            switch frame {
            case .event(let position, let bytes, let receivedAt):
                guard position > state.position else { return .drop }
                state.position = position
                return .write(bytes, receivedAt)
            case .keepAlive:
                return .write(ServerSentEventEncoder.keepAlive, nil)
            case .end(let problem):
                return .endWith(ServerSentEventEncoder.error(problem, position: state.position))
            }
        }
        switch step {
        case .drop, .wait: break
        case .overflow: finish()
        case .write(let bytes, let receivedAt): write(bytes, receivedAt: receivedAt)
        case .endWith(let bytes):
            write(bytes)
            finish()
        }
    }

    /// Whether the response has started.
    var isAttached: Bool { state.withLockedValue { $0.writer != nil } }

    private func write(_ bytes: ByteBuffer, receivedAt: ContinuousClock.Instant? = nil) {
        let writer: (any BodyStreamWriter)? = state.withLockedValue { state in
            guard !state.ended, state.pendingWrites < maxPendingWrites else { return nil }
            state.pendingWrites += 1
            return state.writer
        }
        guard let writer else {
            finish()
            return
        }
        let promise = eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { result in
            self.state.withLockedValue { $0.pendingWrites -= 1 }
            switch result {
            case .success: if let receivedAt { self.metrics.relayed(after: receivedAt.duration(to: .now)) }
            case .failure: self.finish()
            }
        }
        writer.write(.buffer(bytes), promise: promise)
    }

    private func finish() {
        let writer: (any BodyStreamWriter)?? = state.withLockedValue { state in
            guard !state.ended else { return .none }
            state.ended = true
            return .some(state.writer)
        }
        guard case .some(let attached) = writer else { return }
        attached?.write(.end, promise: nil)
        onEnd(self)
    }
}
