import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The Anthropic Messages API, streaming (`POST {baseURL}/v1/messages` with `stream: true`): the
/// provider configured by `ANTHROPIC_*`, or any provider with `PROVIDER_<NAME>_API=anthropic`.
public typealias AnthropicClient = StreamingClient<AnthropicWire>

extension StreamingClient where Wire == AnthropicWire {
    public convenience init(configuration: AnthropicConfiguration, eventLoopGroup: any EventLoopGroup = HTTPClient.defaultEventLoopGroup,
                            name: String = "anthropic", relayID: String? = nil) {
        self.init(wire: AnthropicWire(configuration: configuration, name: name, relayID: relayID), eventLoopGroup: eventLoopGroup)
    }
}

/// The Messages API's wire format: its request (with prompt caching and extended thinking), its
/// events (``AnthropicEvents``), its error bodies (``AnthropicErrorBody``) and its models list.
public struct AnthropicWire: StreamingWire {
    public typealias Reader = AnthropicEvents
    public let configuration: AnthropicConfiguration
    public let name: String
    /// This server's id, sent as ``RelayHeader`` (nil: none).
    public let relayID: String?

    public init(configuration: AnthropicConfiguration, name: String = "anthropic", relayID: String? = nil) {
        self.configuration = configuration
        self.name = name
        self.relayID = relayID
    }

    public var settings: ClientSettings { configuration.clientSettings }

    private var headers: HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "anthropic-version", value: configuration.version)
        switch configuration.authScheme {
        case .apiKeyHeader: headers.add(name: "x-api-key", value: configuration.apiKey)
        case .bearer: headers.add(name: "authorization", value: "Bearer \(configuration.apiKey)")
        }
        if let relayID { headers.add(name: RelayHeader.name, value: relayID) }
        return headers
    }

    public func replyRequest(_ request: ModelRequest) throws -> HTTPClient.Request {
        var headers = headers
        headers.add(name: "accept", value: "text/event-stream")
        return try .provider(url: configuration.baseURL + "/v1/messages", headers: headers,
                             body: try JSONEncoder().encode(MessagesRequestBody(request)))
    }

    public func error(status: Int, body: Data, retryAfter: Duration?) -> ProviderError {
        AnthropicErrorBody.providerError(from: body, status: status, retryAfter: retryAfter)
    }

    public func modelsRequest() throws -> HTTPClient.Request {
        try .provider(url: configuration.baseURL + "/v1/models?limit=1000", method: .GET, headers: headers)
    }

    public func models(in body: Data) throws -> [String] {
        try JSONDecoder().decode(ModelList.self, from: body).data.map(\.id)
    }
}

/// `{"data": [{"id": …}, …]}`: a models list, in Anthropic's and OpenAI's shape alike.
struct ModelList: Decodable {
    struct Model: Decodable { var id: String }
    var data: [Model]
}

/// The JSON body of `POST /v1/messages`. With prompt caching, the system prompt and the messages
/// marked as cache breakpoints become content blocks with `cache_control: {"type": "ephemeral"}`.
/// Attachments become image, document and text blocks before the message's text.
struct MessagesRequestBody: Encodable {
    struct CacheControl: Encodable {
        var type = "ephemeral"
    }

    /// `{"type": "base64", "media_type": …, "data": …}` (the bytes base64-encoded by the encoder).
    struct Source: Encodable {
        var type = "base64"
        var media_type: String
        var data: Data
    }

    struct Block: Encodable {
        var type: String
        var text: String?
        var source: Source?
        var title: String?
        var cache_control: CacheControl?

        static func text(_ text: String) -> Block { Block(type: "text", text: text) }

        static func attachment(_ attachment: ModelAttachment) -> Block {
            switch attachment {
            case .image(let mediaType, let data): Block(type: "image", source: Source(media_type: mediaType, data: data))
            case .pdf(let name, let data): Block(type: "document", source: Source(media_type: "application/pdf", data: data), title: name)
            case .text(let name, let text): .text(ModelAttachment.textPart(name: name, text: text))
            }
        }
    }

    /// A plain string, or content blocks.
    enum Content: Encodable {
        case text(String)
        case blocks([Block])

        init(_ text: String, attachments: [ModelAttachment] = [], cached: Bool) {
            guard cached || !attachments.isEmpty else {
                self = .text(text)
                return
            }
            var blocks = attachments.map(Block.attachment)
            // The API refuses an empty text block; a message of attachments alone has none.
            if !text.isEmpty || blocks.isEmpty { blocks.append(.text(text)) }
            if cached { blocks[blocks.count - 1].cache_control = CacheControl() }
            self = .blocks(blocks)
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

    struct Thinking: Encodable {
        var type = "enabled"
        var budget_tokens: Int
    }

    var model: String
    var max_tokens: Int
    var stream = true
    var system: Content?
    var messages: [Message]
    /// Extended thinking: the budget comes on top of the answer's `max_tokens` (which must exceed it).
    var thinking: Thinking?

    init(_ request: ModelRequest) {
        model = request.model
        max_tokens = request.maxTokens + (request.thinkingBudget ?? 0)
        thinking = request.thinkingBudget.map { Thinking(budget_tokens: $0) }
        system = request.system.flatMap { $0.isEmpty ? nil : Content($0, cached: request.cachesPrompt) }
        messages = request.messages.map {
            Message(role: $0.role.rawValue,
                    content: Content($0.content, attachments: $0.attachments, cached: request.cachesPrompt && $0.cacheBreakpoint))
        }
    }
}
