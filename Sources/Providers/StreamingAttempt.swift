import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One attempt at a reply, read where its bytes arrive: on the connection's event loop, parsed as
/// they come (no task, no buffer between the socket and the caller's `onEvent`), each event handed
/// out before anything after it is even parsed — so a failure later in the same read never loses
/// what came before it.
///
/// `@unchecked Sendable`: AsyncHTTPClient calls every delegate method on the request's event loop,
/// one at a time, and the mutable state below is touched only there; ``handedOutText`` is read by
/// the client after the request's future completed, which orders it after the last call.
final class StreamingAttempt<Wire: StreamingWire>: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = ModelCompletion

    let activity = UpstreamActivity()
    private let wire: Wire
    private let onEvent: @Sendable (ModelStreamEvent) -> Void
    private var parser = ServerSentEventParser()
    private var reader = Wire.Reader()
    private var completion: ModelCompletion?
    /// The status and body of a response other than 200, kept for the error it becomes.
    private var refusal: (status: HTTPResponseStatus, retryAfter: Duration?, body: ByteBuffer)?
    /// Whether any text (or reasoning) was handed out: after that, a failure is not retried.
    private(set) var handedOutText = false

    init(wire: Wire, onEvent: @escaping @Sendable (ModelStreamEvent) -> Void) {
        self.wire = wire
        self.onEvent = onEvent
    }

    func didReceiveHead(task: HTTPClient.Task<ModelCompletion>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        activity.touch()
        if head.status != .ok {
            refusal = (head.status, RetryAfter.parse(head.headers), ByteBuffer())
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<ModelCompletion>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        activity.touch()
        if refusal != nil {
            if (refusal?.body.readableBytes ?? 0) < 64 * 1024 {
                var chunk = buffer
                refusal?.body.writeBuffer(&chunk)
            }
        } else if completion == nil {
            do {
                try buffer.withUnsafeReadableBytes { bytes in
                    try parser.feed(bytes) { event in
                        guard completion == nil else { return }
                        completion = try reader.read(event, emit: hand)
                    }
                }
                if parser.pendingBytes > wire.settings.maxEventBytes {
                    throw ProviderError(.upstream, "an event of the reply stream grew past \(wire.settings.maxEventBytes) bytes")
                }
            } catch {
                task.fail(reason: error)
            }
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    private func hand(_ event: ModelStreamEvent) {
        switch event {
        case .text, .reasoning, .toolCall: handedOutText = true
        case .usage, .reasoningSignature: break
        }
        onEvent(event)
    }

    func didReceiveError(task: HTTPClient.Task<ModelCompletion>, _ error: any Error) {}

    func didFinishRequest(task: HTTPClient.Task<ModelCompletion>) throws -> ModelCompletion {
        if let refusal {
            throw wire.error(status: Int(refusal.status.code), body: Data(refusal.body.readableBytesView), retryAfter: refusal.retryAfter)
        }
        if let completion { return completion }
        return try reader.end(emit: hand).get()
    }
}

/// How long a provider asks to be left alone.
public enum RetryAfter {
    /// `retry-after-ms` (milliseconds) or `retry-after` (seconds, or an HTTP date).
    public static func parse(_ headers: HTTPHeaders) -> Duration? {
        if let milliseconds = headers.first(name: "retry-after-ms").flatMap(Double.init), milliseconds >= 0 {
            return .milliseconds(milliseconds)
        }
        guard let value = headers.first(name: "retry-after") else { return nil }
        if let seconds = Double(value), seconds >= 0 { return .milliseconds(seconds * 1000) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .milliseconds(max(0, date.timeIntervalSinceNow) * 1000)
    }
}
