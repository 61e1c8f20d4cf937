import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Vapor

/// What a stream is handed, in publish order.
enum StreamFrame: Sendable {
    /// An event that moves the stream to `position`, already encoded as SSE bytes; for a delta,
    /// when its text reached the server (to measure the relay).
    case event(StreamPosition, ByteBuffer, receivedAt: ContinuousClock.Instant? = nil)
    /// A piece of a reply, encoded (`bytes`) as an event that moves the stream to `end`. A reader
    /// that already has its beginning (a replay or a catch-up gave it part of the piece) gets the
    /// rest alone, encoded for it.
    case delta(ReplyDelta, end: StreamPosition, bytes: ByteBuffer)
    /// Time passes: a stream past its token's expiry ends, one whose response never started is
    /// dropped, and the others get a keep-alive comment when `keepAlive`.
    case tick(now: Date, keepAlive: Bool)
    /// Whatever this stream has not seen of `conversation` (after its position), computed for it
    /// alone: how a stream catches up after events could not reach it (see ``StreamReplay``).
    case catchUp([MessageResponse])
    /// The current conversation changed: a stream on an older revision says so (`conversation`)
    /// and replays `conversation` whole.
    case reset(revision: Int, conversation: [MessageResponse])
    /// The chat's title changed (`chat`, at the stream's position: it moves nothing).
    case renamed(title: String)
    /// The stream cannot go on: an `error` event, then the end; nil ends it quietly.
    case end(HTTPProblem?)
}

/// One open event stream, written on its connection's event loop with no task of its own.
///
/// Publishers hand it frames from any thread; they wait in a small locked inbox, and one drain on
/// the event loop takes them all, drops what the reader already has (by position), and writes the
/// rest in one write and one flush. So a burst of events costs one wake-up and one syscall, and
/// frames keep their publish order whichever thread sent them. Everything else is touched only on
/// the event loop. Frames that arrive before the response starts wait until the replay is written.
/// A reader with `maxPendingEvents` events written but not yet taken by the network is too slow:
/// its stream ends, with a `: behind` comment last, and it resumes by event id.
final class StreamSubscriber: Sendable {
    let id: Int
    let chat: UUID
    let eventLoop: any EventLoop
    /// The access token the stream was opened with.
    let session: StreamSession
    var userID: String { session.userID }
    var expiresAt: Date? { session.expiresAt }
    let createdAt: Date
    private let maxPendingEvents: Int
    private let metrics: AppMetrics
    private let onEnd: @Sendable (StreamSubscriber) -> Void
    /// Frames handed over and not drained yet, and whether a drain is scheduled. The lock is taken
    /// by publishers and by the drain, each for an append or a swap.
    private let inbox = NIOLockedValueBox(Inbox())
    /// The stream's own state: touched only on `eventLoop`.
    private let state: NIOLoopBoundBox<State>

    /// A stream whose response has not started after this long is dropped (its client went away).
    static let unstartedLimit: TimeInterval = 60

    private struct Inbox {
        var frames: [StreamFrame] = []
        var drainScheduled = false
        /// What the response starts with (``prepare(replay:position:)``), until it starts.
        var replay: (bytes: ByteBuffer, position: StreamPosition)?
    }

    private struct State {
        var writer: (any BodyStreamWriter)?
        /// Frames that came before the replay was written.
        var waiting: [StreamFrame] = []
        var position = StreamPosition.start
        /// Events written and not yet taken by the network.
        var pendingEvents = 0
        var ended = false
    }

    init(id: Int, chat: UUID, session: StreamSession, eventLoop: any EventLoop, createdAt: Date,
         maxPendingEvents: Int, metrics: AppMetrics, onEnd: @escaping @Sendable (StreamSubscriber) -> Void) {
        self.id = id
        self.chat = chat
        self.session = session
        self.eventLoop = eventLoop
        self.createdAt = createdAt
        self.maxPendingEvents = maxPendingEvents
        self.metrics = metrics
        self.onEnd = onEnd
        state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: eventLoop)
    }

    /// Hands `frame` over; call in publish order (the hub does, under its lock).
    func deliver(_ frame: StreamFrame) {
        let scheduleDrain = inbox.withLockedValue { inbox in
            inbox.frames.append(frame)
            defer { inbox.drainScheduled = true }
            return !inbox.drainScheduled
        }
        if scheduleDrain { eventLoop.execute { self.drain() } }
    }

    /// Ends the stream (at most once) and tells the hub; with a problem, an `error` event first.
    func end(with problem: HTTPProblem? = nil) {
        deliver(.end(problem))
    }

    /// What the response is to start with: the replay, which leaves the reader at `position`. Held
    /// here, not by the response, so that it is let go once written.
    func prepare(replay: ByteBuffer, position: StreamPosition) {
        inbox.withLockedValue { $0.replay = (replay, position) }
    }

    /// Starts the response: writes the replay (``prepare(replay:position:)``), then whatever arrived
    /// meanwhile. Called on the event loop by the response body.
    func attach(_ writer: any BodyStreamWriter) {
        let prepared = inbox.withLockedValue { inbox in
            defer { inbox.replay = nil }
            return inbox.replay
        }
        guard !state.value.ended, let (replay, position) = prepared else {
            writer.write(.end, promise: nil)
            return
        }
        state.value.writer = writer
        state.value.position = position
        let waiting = state.value.waiting
        state.value.waiting = []
        var out = replay
        var relays: [ContinuousClock.Instant] = []
        var events = 1
        if case .finish(let problem) = apply(waiting, into: &out, relays: &relays, events: &events) {
            write(out, events: events, relays: relays)
            finish(problem)
            return
        }
        write(out, events: events, relays: relays)
    }

    // MARK: On the event loop

    private enum Verdict {
        case goOn
        case finish(HTTPProblem?)
    }

    private func drain() {
        // Taken whole, so that an idle stream keeps no buffer of frames between bursts.
        let frames = inbox.withLockedValue { inbox -> [StreamFrame] in
            inbox.drainScheduled = false
            defer { inbox.frames = [] }
            return inbox.frames
        }
        guard !state.value.ended else { return }
        guard state.value.writer != nil else {
            holdUntilAttached(frames)
            return
        }
        var out = ByteBuffer()
        var relays: [ContinuousClock.Instant] = []
        var events = 0
        let verdict = apply(frames, into: &out, relays: &relays, events: &events)
        if out.readableBytes > 0 { write(out, events: events, relays: relays) }
        if case .finish(let problem) = verdict { finish(problem) }
    }

    /// Before the response starts: events wait for the replay; an end, an expired token, a client
    /// that never took its response, or too many waiting events end the stream.
    private func holdUntilAttached(_ frames: [StreamFrame]) {
        for frame in frames {
            switch frame {
            case .event, .delta, .catchUp, .reset, .renamed:
                state.value.waiting.append(frame)
            case .tick(let now, _):
                let expired = expiresAt.map { $0 <= now } ?? false
                if expired || now.timeIntervalSince(createdAt) > Self.unstartedLimit { return finish(nil) }
            case .end:
                return finish(nil)
            }
        }
        if state.value.waiting.count > maxPendingEvents { fallBehind() }
    }

    /// Appends what `frames` add to the stream; stops at the first that ends it.
    private func apply(_ frames: [StreamFrame], into out: inout ByteBuffer, relays: inout [ContinuousClock.Instant],
                       events: inout Int) -> Verdict {
        for frame in frames {
            switch frame {
            case .event(let position, let bytes, let receivedAt):
                guard position > state.value.position else { continue }
                state.value.position = position
                var copy = bytes
                out.writeBuffer(&copy)
                events += 1
                if let receivedAt { relays.append(receivedAt) }
            case .delta(let delta, let end, let bytes):
                let position = state.value.position
                guard end > position else { continue }
                state.value.position = end
                events += 1
                if let receivedAt = delta.receivedAt { relays.append(receivedAt) }
                guard position.revision == end.revision, position.sequence == end.sequence, position.segment == end.segment,
                      let delivered = position.offset, delivered > delta.offset else {
                    var copy = bytes
                    out.writeBuffer(&copy)
                    continue
                }
                let utf8 = delta.text.utf8
                if let start = utf8.index(utf8.startIndex, offsetBy: delivered - delta.offset, limitedBy: utf8.endIndex) {
                    out.writeImmutableBuffer(ServerSentEventEncoder.delta(delta.kind, messageID: delta.messageID, text: Substring(utf8[start...]),
                                                                          position: end))
                }
            case .tick(let now, let keepAlive):
                if let expiresAt, expiresAt <= now {
                    out.writeImmutableBuffer(ServerSentEventEncoder.error(ChatStreamHub.tokenExpired, position: state.value.position))
                    return .finish(nil)
                }
                if keepAlive {
                    out.writeImmutableBuffer(ServerSentEventEncoder.keepAlive)
                    events += 1
                }
            case .catchUp(let conversation):
                let missed = StreamReplay(conversation: conversation, of: chat, revision: state.value.position.revision,
                                          after: state.value.position, preamble: false)
                var bytes = missed.bytes
                out.writeBuffer(&bytes)
                events += missed.events
                state.value.position = missed.position
            case .reset(let revision, let conversation):
                guard revision > state.value.position.revision else { continue }
                let replay = StreamReplay(conversation: conversation, of: chat, revision: revision, after: nil, preamble: false,
                                          announceChange: true)
                var bytes = replay.bytes
                out.writeBuffer(&bytes)
                events += replay.events
                state.value.position = replay.position
            case .renamed(let title):
                out.writeImmutableBuffer(ServerSentEventEncoder.renamed(chat: chat, title: title, position: state.value.position))
                events += 1
            case .end(let problem):
                if let problem { out.writeImmutableBuffer(ServerSentEventEncoder.error(problem, position: state.value.position)) }
                return .finish(nil)
            }
        }
        return .goOn
    }

    /// Writes `bytes` (holding `events` events) in one write; a write the network never takes
    /// (too slow a reader) or that fails (the client left) ends the stream.
    private func write(_ bytes: ByteBuffer, events: Int, relays: [ContinuousClock.Instant]) {
        guard let writer = state.value.writer, !state.value.ended else { return }
        guard state.value.pendingEvents + events <= maxPendingEvents else {
            fallBehind()
            return
        }
        state.value.pendingEvents += events
        let promise = eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { result in
            self.state.value.pendingEvents -= events
            switch result {
            case .success: self.metrics.relayed(relays)
            case .failure: self.finish(nil)
            }
        }
        writer.write(.buffer(bytes), promise: promise)
    }

    /// The reader is `maxPendingEvents` events behind: its stream ends, saying so in a comment.
    private func fallBehind() {
        guard !state.value.ended else { return }
        metrics.streamFellBehind()
        state.value.writer?.write(.buffer(ServerSentEventEncoder.fellBehind), promise: nil)
        finish(nil)
    }

    /// Ends the response (an `error` event first when given a problem), once, and tells the hub.
    private func finish(_ problem: HTTPProblem?) {
        guard !state.value.ended else { return }
        state.value.ended = true
        if let writer = state.value.writer {
            if let problem {
                writer.write(.buffer(ServerSentEventEncoder.error(problem, position: state.value.position)), promise: nil)
            }
            writer.write(.end, promise: nil)
        }
        state.value.waiting = []
        onEnd(self)
    }
}
