import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// A streaming model provider over HTTP, whatever its API (``StreamingWire``): a reply is one or
/// more attempts (``StreamingAttempt``), each read as its bytes arrive; a failed attempt is tried
/// again as ``RetryPolicy`` says, and ``IdleWatchdog`` ends one whose upstream falls silent.
/// Cancelling the calling task closes the upstream request.
public final class StreamingClient<Wire: StreamingWire>: ModelProvider {
    public var name: String { wire.name }
    public let wire: Wire
    let http: HTTPClient
    private let sent = NIOLockedValueBox(0)

    /// HTTP requests sent so far, retries included.
    public var requestsSent: Int { sent.withLockedValue { $0 } }

    /// Requests run on `eventLoopGroup` (the server's own, so that a reply's bytes and the streams
    /// they go to often share a thread).
    public init(wire: Wire, eventLoopGroup: any EventLoopGroup = HTTPClient.defaultEventLoopGroup) {
        self.wire = wire
        var configuration = HTTPClient.Configuration(timeout: .init(connect: TimeAmount(wire.settings.connectTimeout)))
        // One connection per concurrent reply over HTTP/1.1; HTTP/2 multiplexes where offered.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 4096
        configuration.decompression = .disabled
        // A connection that cannot be made fails the request at once (the client's own retries,
        // with backoff, decide what follows) instead of being retried inside the pool until the
        // connect timeout: a refused connection would otherwise hold a reply for 10 s per attempt.
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    public func streamReply(_ request: ModelRequest, onEvent: @escaping @Sendable (ModelStreamEvent) -> Void) async throws -> ModelCompletion {
        try await streamReply(request, onRetry: { _, _, _ in }, onEvent: onEvent)
    }

    public func streamReply(_ request: ModelRequest, onRetry: @escaping @Sendable (_ retry: Int, _ error: ProviderError, _ wait: Duration) -> Void,
                            onEvent: @escaping @Sendable (ModelStreamEvent) -> Void) async throws -> ModelCompletion {
        let httpRequest = try wire.replyRequest(request)
        var retry = 0
        while true {
            let attempt = StreamingAttempt(wire: wire, onEvent: onEvent)
            do {
                return try await run(attempt, httpRequest)
            } catch let error as ProviderError {
                retry += 1
                guard let wait = wire.settings.retries.delay(after: error, retry: retry, textHandedOut: attempt.handedOutText) else {
                    throw error
                }
                onRetry(retry, error, wait)
                try await wire.settings.sleep(wait)
            }
        }
    }

    /// Sends the request and reads the reply into `attempt`, under the watchdog; cancelling the
    /// calling task cancels the request.
    private func run(_ attempt: StreamingAttempt<Wire>, _ request: HTTPClient.Request) async throws -> ModelCompletion {
        sent.withLockedValue { $0 += 1 }
        let task = http.execute(request: request, delegate: attempt, eventLoop: .indifferent)
        let settings = wire.settings
        let watchdog = IdleWatchdog(clock: settings.clock, firstByte: settings.firstByteTimeout, idle: settings.idleTimeout)
            .watch(attempt.activity) { task.fail(reason: $0) }
        defer { watchdog.cancel() }
        return try await withTaskCancellationHandler {
            do {
                return try await task.futureResult.get()
            } catch {
                throw Task.isCancelled ? CancellationError() : Self.translate(error, settings)
            }
        } onCancel: {
            task.cancel()
        }
    }

    /// The provider's models, as it lists them (within `timeout`).
    public func listModels(timeout: Duration) async throws -> [String] {
        let request = try wire.modelsRequest()
        let response: HTTPClient.Response
        do {
            let accumulator = ResponseAccumulator(request: request, maxBodySize: ModelListLimits.bodyBytes)
            response = try await http.execute(request: request, delegate: accumulator, deadline: .now() + TimeAmount(timeout)).get()
        } catch let error as ResponseAccumulator.ResponseTooBigError {
            throw ProviderError(.upstream, "the models list is larger than \(error.maxBodySize) bytes")
        } catch {
            throw Self.translate(error, wire.settings)
        }
        let body = response.body.map { Data($0.readableBytesView) } ?? Data()
        guard response.status == .ok else {
            throw wire.error(status: Int(response.status.code), body: body, retryAfter: nil)
        }
        do {
            return ModelListLimits.kept(try wire.models(in: body))
        } catch {
            throw ProviderError(.upstream, "the models list could not be read")
        }
    }

    /// What went wrong on the wire, in ``ProviderError`` terms; cancellation stays cancellation.
    static func translate(_ error: any Error, _ settings: ClientSettings) -> any Error {
        if error is ProviderError || error is CancellationError { return error }
        if let http = error as? HTTPClientError {
            switch http {
            case .cancelled:
                return CancellationError()
            case .connectTimeout:
                return ProviderError(.timeout, "could not connect within \(settings.connectTimeout)")
            case .deadlineExceeded, .readTimeout:
                return ProviderError(.timeout, "no answer in time")
            case .remoteConnectionClosed:
                return ProviderError(.interrupted, "the connection was closed")
            default:
                return ProviderError(.connection, String(describing: http))
            }
        }
        return ProviderError(.connection, String(describing: error))
    }
}

extension HTTPClient.Request {
    /// A JSON POST (or GET, without `body`) with the headers every provider request carries.
    static func provider(url: String, method: HTTPMethod = .POST, headers extra: HTTPHeaders, body: Data? = nil) throws -> HTTPClient.Request {
        var headers = extra
        if body != nil { headers.add(name: "content-type", value: "application/json") }
        headers.add(name: "user-agent", value: "ChatServer/1.0")
        return try HTTPClient.Request(url: url, method: method, headers: headers, body: body.map { .byteBuffer(ByteBuffer(bytes: $0)) })
    }
}

/// What of a provider's models list is believed: its size, and the names a model id can hold.
public enum ModelListLimits {
    public static let bodyBytes = 4 << 20
    public static let models = 1_000
    public static let nameBytes = 200

    /// The first ``models`` names that are at most ``nameBytes`` of visible characters, each once.
    public static func kept(_ names: [String]) -> [String] {
        var seen = Set<String>()
        var kept: [String] = []
        for name in names where kept.count < models && !name.isEmpty && name.utf8.count <= nameBytes {
            let visible = name.unicodeScalars.allSatisfy {
                !$0.properties.isWhitespace && ![.control, .format, .unassigned].contains($0.properties.generalCategory)
            }
            if visible, seen.insert(name).inserted { kept.append(name) }
        }
        return kept
    }
}
