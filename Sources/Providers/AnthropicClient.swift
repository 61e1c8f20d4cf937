import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The Anthropic Messages API, streaming: `POST {baseURL}/v1/messages` with `stream: true`.
///
/// A reply is one or more attempts (``AnthropicAttempt``), each read as its bytes arrive; a failed
/// attempt is tried again as ``RetryPolicy`` says, and ``IdleWatchdog`` ends one whose upstream
/// falls silent.
public final class AnthropicClient: ModelProvider {
    public let name = "anthropic"
    let configuration: AnthropicConfiguration
    let http: HTTPClient
    private let sent = NIOLockedValueBox(0)

    /// HTTP requests sent so far, retries included.
    public var requestsSent: Int { sent.withLockedValue { $0 } }

    /// Requests run on `eventLoopGroup` (the server's own, so that a reply's bytes and the streams
    /// they go to often share a thread).
    public init(configuration: AnthropicConfiguration, eventLoopGroup: any EventLoopGroup = HTTPClient.defaultEventLoopGroup) {
        self.configuration = configuration
        var clientConfiguration = HTTPClient.Configuration(timeout: .init(connect: TimeAmount(configuration.connectTimeout)))
        // One connection per concurrent reply over HTTP/1.1; HTTP/2 multiplexes where offered.
        clientConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 4096
        clientConfiguration.decompression = .disabled
        // A connection that cannot be made fails the request at once (the client's own retries,
        // with backoff, decide what follows) instead of being retried inside the pool until the
        // connect timeout: a refused connection would otherwise hold a reply for 10 s per attempt.
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: clientConfiguration)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    public func streamReply(_ request: ModelRequest, onEvent: @escaping @Sendable (ModelStreamEvent) -> Void) async throws -> ModelCompletion {
        let body = try JSONEncoder().encode(MessagesRequestBody(request))
        var retry = 0
        while true {
            let attempt = AnthropicAttempt(onEvent: onEvent)
            do {
                return try await run(attempt, body: body)
            } catch let error as ProviderError {
                retry += 1
                guard let wait = configuration.retries.delay(after: error, retry: retry, textHandedOut: attempt.handedOutText) else {
                    throw error
                }
                try await configuration.sleep(wait)
            }
        }
    }

    /// Sends the request and reads the reply into `attempt`, under the watchdog; cancelling the
    /// calling task cancels the request.
    private func run(_ attempt: AnthropicAttempt, body: Data) async throws -> ModelCompletion {
        let request = try makeHTTPRequest(body: body)
        sent.withLockedValue { $0 += 1 }
        let task = http.execute(request: request, delegate: attempt, eventLoop: .indifferent)
        let watchdog = IdleWatchdog(clock: configuration.clock, firstByte: configuration.firstByteTimeout, idle: configuration.idleTimeout)
            .watch(attempt.activity) { task.fail(reason: $0) }
        defer { watchdog.cancel() }
        return try await withTaskCancellationHandler {
            do {
                return try await task.futureResult.get()
            } catch {
                throw Task.isCancelled ? CancellationError() : Self.translate(error, configuration)
            }
        } onCancel: {
            task.cancel()
        }
    }

    /// The request as the API wants it.
    func makeHTTPRequest(body: Data) throws -> HTTPClient.Request {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: "text/event-stream")
        headers.add(name: "anthropic-version", value: configuration.version)
        headers.add(name: "user-agent", value: "ChatServer/1.0")
        switch configuration.authScheme {
        case .apiKeyHeader: headers.add(name: "x-api-key", value: configuration.apiKey)
        case .bearer: headers.add(name: "authorization", value: "Bearer \(configuration.apiKey)")
        }
        return try HTTPClient.Request(url: configuration.baseURL + "/v1/messages", method: .POST, headers: headers,
                                      body: .byteBuffer(ByteBuffer(bytes: body)))
    }

    /// What went wrong on the wire, in ``ProviderError`` terms; cancellation stays cancellation.
    static func translate(_ error: any Error, _ configuration: AnthropicConfiguration) -> any Error {
        if error is ProviderError || error is CancellationError { return error }
        if let http = error as? HTTPClientError {
            switch http {
            case .cancelled:
                return CancellationError()
            case .connectTimeout:
                return ProviderError(.timeout, "could not connect within \(configuration.connectTimeout)")
            case .remoteConnectionClosed:
                return ProviderError(.interrupted, "the connection was closed")
            default:
                return ProviderError(.connection, String(describing: http))
            }
        }
        return ProviderError(.connection, String(describing: error))
    }
}

/// The JSON body of `POST /v1/messages`. With prompt caching, the system prompt and the messages
/// marked as cache breakpoints become content blocks with `cache_control: {"type": "ephemeral"}`.
struct MessagesRequestBody: Encodable {
    struct CacheControl: Encodable {
        var type = "ephemeral"
    }

    struct TextBlock: Encodable {
        var type = "text"
        var text: String
        var cache_control: CacheControl?
    }

    /// A plain string, or content blocks.
    enum Content: Encodable {
        case text(String)
        case blocks([TextBlock])

        init(_ text: String, cached: Bool) {
            self = cached ? .blocks([TextBlock(text: text, cache_control: CacheControl())]) : .text(text)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .text(let text): try container.encode(text)
            case .blocks(let blocks): try container.encode(blocks)
            }
        }
    }

    struct Message: Encodable {
        var role: String
        var content: Content
    }

    var model: String
    var max_tokens: Int
    var stream = true
    var system: Content?
    var messages: [Message]

    init(_ request: ModelRequest) {
        model = request.model
        max_tokens = request.maxTokens
        system = request.system.flatMap { $0.isEmpty ? nil : Content($0, cached: request.cachesPrompt) }
        messages = request.messages.map {
            Message(role: $0.role.rawValue, content: Content($0.content, cached: request.cachesPrompt && $0.cacheBreakpoint))
        }
    }
}
