import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One reply in progress: connects (with retries), then parses the event stream as it is pulled.
/// Lives inside one iterator, used by one task at a time.
final class AnthropicReply {
    private enum State {
        case notConnected
        case streaming(HTTPClientResponse.Body.AsyncIterator)
        case done
    }

    private let client: AnthropicClient
    private let request: ModelRequest
    private var state = State.notConnected
    private var parser = ServerSentEventParser()
    private var decoder = AnthropicEventDecoder()
    /// Decoded events not yet handed out (one network read can hold several).
    private var pending: [ModelEvent] = []
    private var pendingIndex = 0
    private var sentText = false
    private var retries = 0

    init(client: AnthropicClient, request: ModelRequest) {
        self.client = client
        self.request = request
    }

    func next() async throws -> ModelEvent? {
        while true {
            if pendingIndex < pending.count {
                let event = pending[pendingIndex]
                pendingIndex += 1
                if case .text = event { sentText = true }
                if case .finished = event { state = .done }
                return event
            }
            do {
                switch state {
                case .done:
                    return nil
                case .notConnected:
                    state = .streaming(try await connect())
                case .streaming(var body):
                    let chunk: ByteBuffer?
                    do {
                        chunk = try await body.next()
                    } catch {
                        throw Self.translate(error, client.configuration)
                    }
                    state = .streaming(body)
                    try read(chunk)
                }
            } catch let error as ProviderError where error.kind.isTransient && !sentText && retries < client.configuration.maxRetries {
                retries += 1
                try await client.configuration.sleep(client.configuration.delay(beforeRetry: retries, retryAfter: error.retryAfter))
                restart()
            }
        }
    }

    /// Feeds one network read to the parser; nil means the server closed the stream.
    private func read(_ chunk: ByteBuffer?) throws {
        pending.removeAll(keepingCapacity: true)
        pendingIndex = 0
        guard let chunk else {
            throw ProviderError(.interrupted, "the stream ended before message_stop", usage: decoder.usage)
        }
        try chunk.withUnsafeReadableBytes { bytes in
            try parser.feed(bytes) { event in
                if let decoded = try decoder.decode(event) { pending.append(decoded) }
            }
        }
    }

    private func restart() {
        state = .notConnected
        parser = ServerSentEventParser()
        decoder = AnthropicEventDecoder()
        pending.removeAll(keepingCapacity: true)
        pendingIndex = 0
    }

    private func connect() async throws -> HTTPClientResponse.Body.AsyncIterator {
        let configuration = client.configuration
        let response: HTTPClientResponse
        do {
            let http = try client.makeHTTPRequest(request)
            response = try await client.http.execute(http, deadline: .now() + TimeAmount(configuration.firstByteTimeout))
        } catch {
            throw Self.translate(error, configuration)
        }
        guard response.status == .ok else {
            let body = (try? await response.body.collect(upTo: 64 * 1024)).map { Data($0.readableBytesView) } ?? Data()
            throw AnthropicErrorBody.providerError(
                from: body, status: Int(response.status.code), retryAfter: Self.retryAfter(response.headers)
            )
        }
        return response.body.makeAsyncIterator()
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

    /// What went wrong on the wire, in ``ProviderError`` terms; cancellation stays cancellation.
    static func translate(_ error: any Error, _ configuration: AnthropicConfiguration) -> any Error {
        if error is ProviderError || error is CancellationError { return error }
        if let http = error as? HTTPClientError {
            switch http {
            case .cancelled:
                return CancellationError()
            case .deadlineExceeded:
                return ProviderError(.timeout, "no response within \(configuration.firstByteTimeout)")
            case .connectTimeout:
                return ProviderError(.timeout, "could not connect within \(configuration.connectTimeout)")
            case .readTimeout:
                return ProviderError(.timeout, "nothing received for \(configuration.idleTimeout)")
            case .remoteConnectionClosed:
                return ProviderError(.interrupted, "the connection was closed")
            default:
                return ProviderError(.connection, String(describing: http))
            }
        }
        return ProviderError(.connection, String(describing: error))
    }
}
