import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One attempt at a reply, read where its bytes arrive: on the connection's event loop, parsed as
/// they come (no task, no buffer between the socket and the caller's `onText`), each piece of text
/// handed out before anything after it is even parsed — so a failure later in the same read never
/// loses text that came before it. Usage is handed out as the API reports it (input at
/// `message_start`, output at `message_delta`), so a reply stopped or cut short still counts it.
///
/// `@unchecked Sendable`: AsyncHTTPClient calls every delegate method on the request's event loop,
/// one at a time, and the mutable state below is touched only there; ``handedOutText`` is read by
/// the client after the request's future completed, which orders it after the last call.
final class AnthropicAttempt: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = ModelCompletion

    let activity = UpstreamActivity()
    private let onEvent: @Sendable (ModelStreamEvent) -> Void
    private var parser = ServerSentEventParser()
    private var events = AnthropicEvents()
    private var completion: ModelCompletion?
    /// The status and body of a response other than 200, kept for the error it becomes.
    private var refusal: (status: HTTPResponseStatus, retryAfter: Duration?, body: ByteBuffer)?
    /// Whether any text was handed out: after that, a failure is not retried.
    private(set) var handedOutText = false

    init(onEvent: @escaping @Sendable (ModelStreamEvent) -> Void) {
        self.onEvent = onEvent
    }

    func didReceiveHead(task: HTTPClient.Task<ModelCompletion>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        activity.touch()
        if head.status != .ok {
            refusal = (head.status, Self.retryAfter(head.headers), ByteBuffer())
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
                        switch try events.read(event) {
                        case .text(let piece):
                            handedOutText = true
                            onEvent(.text(piece))
                        case .usage(let usage, let final):
                            onEvent(.usage(usage, final: final))
                        case .finished(let finished):
                            completion = finished
                        case nil:
                            break
                        }
                    }
                }
            } catch {
                task.fail(reason: error)
            }
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveError(task: HTTPClient.Task<ModelCompletion>, _ error: any Error) {}

    func didFinishRequest(task: HTTPClient.Task<ModelCompletion>) throws -> ModelCompletion {
        if let refusal {
            throw AnthropicErrorBody.providerError(
                from: Data(refusal.body.readableBytesView), status: Int(refusal.status.code), retryAfter: refusal.retryAfter
            )
        }
        guard let completion else {
            throw ProviderError(.interrupted, "the stream ended before message_stop", usage: events.usage)
        }
        return completion
    }

    /// `retry-after-ms` (milliseconds) or `retry-after` (seconds, or an HTTP date).
    static func retryAfter(_ headers: HTTPHeaders) -> Duration? {
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
