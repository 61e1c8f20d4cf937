import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The Anthropic Messages API, streaming: `POST {baseURL}/v1/messages` with `stream: true`.
///
/// Each reply's events are parsed as the bytes arrive and handed to the caller one by one.
/// Before the first token, transient failures (connection, 429, 5xx, 529, an `error` event) are
/// retried with backoff; after it, a failure ends the reply and the caller keeps the partial text.
public final class AnthropicClient: ModelProvider {
    public let name = "anthropic"
    let configuration: AnthropicConfiguration
    let http: HTTPClient

    public init(configuration: AnthropicConfiguration) {
        self.configuration = configuration
        var clientConfiguration = HTTPClient.Configuration(
            timeout: .init(connect: TimeAmount(configuration.connectTimeout), read: TimeAmount(configuration.idleTimeout))
        )
        // One connection per concurrent reply over HTTP/1.1; HTTP/2 multiplexes where offered.
        clientConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 4096
        clientConfiguration.decompression = .disabled
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: clientConfiguration)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    public func streamReply(_ request: ModelRequest) -> ModelReplyStream {
        ModelReplyStream { [self] in
            let reply = AnthropicReply(client: self, request: request)
            return ModelReplyStream.AsyncIterator { try await reply.next() }
        }
    }

    /// The request as the API wants it.
    func makeHTTPRequest(_ request: ModelRequest) throws -> HTTPClientRequest {
        var http = HTTPClientRequest(url: configuration.baseURL + "/v1/messages")
        http.method = .POST
        http.headers.add(name: "content-type", value: "application/json")
        http.headers.add(name: "accept", value: "text/event-stream")
        http.headers.add(name: "anthropic-version", value: configuration.version)
        http.headers.add(name: "user-agent", value: "ChatServer/1.0")
        switch configuration.authScheme {
        case .apiKeyHeader: http.headers.add(name: "x-api-key", value: configuration.apiKey)
        case .bearer: http.headers.add(name: "authorization", value: "Bearer \(configuration.apiKey)")
        }
        http.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(MessagesRequestBody(request))))
        return http
    }
}

/// The JSON body of `POST /v1/messages`.
struct MessagesRequestBody: Encodable {
    struct Message: Encodable {
        var role: String
        var content: String
    }

    var model: String
    var max_tokens: Int
    var stream = true
    var system: String?
    var messages: [Message]

    init(_ request: ModelRequest) {
        model = request.model
        max_tokens = request.maxTokens
        system = request.system.flatMap { $0.isEmpty ? nil : $0 }
        messages = request.messages.map { Message(role: $0.role.rawValue, content: $0.content) }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
