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
        for earlier in request.relayedBy { headers.add(name: RelayHeader.name, value: earlier) }
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
        /// `tool_use`: the call's id, the tool's name and its input.
        var id: String?
        var name: String?
        var input: JSONValue?
        /// `tool_result`: the call answered, the result's text, and whether it is an error.
        var tool_use_id: String?
        var content: String?
        var is_error: Bool?
        /// `thinking`: the reasoning and its signature.
        var thinking: String?
        var signature: String?
        var cache_control: CacheControl?

        static func text(_ text: String) -> Block { Block(type: "text", text: text) }

        static func toolUse(_ call: ModelToolCall) -> Block {
            // The API takes an object; arguments the model got wrong were answered with an error and go back as `{}`.
            Block(type: "tool_use", id: call.id, name: call.name, input: call.arguments.isObject ? call.arguments : .object([:]))
        }

        static func toolResult(_ result: ModelToolResult) -> Block {
            // An empty result is sent as a word: the API refuses empty text.
            Block(type: "tool_result", tool_use_id: result.callID, content: result.content.isEmpty ? "(no output)" : result.content,
                  is_error: result.isError ? true : nil)
        }

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

        init(_ message: ModelMessage, cached: Bool) {
            role = message.role.rawValue
            guard !message.toolCalls.isEmpty || !message.toolResults.isEmpty else {
                content = Content(message.content, attachments: message.attachments, cached: cached)
                return
            }
            // A turn of a tool loop: the signed thinking that led to the calls, the text, the calls; or the results.
            var blocks: [Block] = []
            if let reasoning = message.reasoning, let signature = message.reasoningSignature {
                blocks.append(Block(type: "thinking", thinking: reasoning, signature: signature))
            }
            if !message.content.isEmpty { blocks.append(.text(message.content)) }
            blocks += message.toolCalls.map(Block.toolUse) + message.toolResults.map(Block.toolResult)
            if cached { blocks[blocks.count - 1].cache_control = CacheControl() }
            content = .blocks(blocks)
        }
    }

    struct Tool: Encodable {
        var name: String
        var description: String
        var input_schema: JSONValue
    }

    struct ToolChoice: Encodable {
        var type: String
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
    var tools: [Tool]?
    var tool_choice: ToolChoice?
    var temperature: Double?
    var stop_sequences: [String]?

    init(_ request: ModelRequest) {
        model = request.model
        // Extended thinking takes no temperature but its own.
        temperature = request.thinkingBudget == nil ? request.temperature : nil
        stop_sequences = request.stopSequences.isEmpty ? nil : request.stopSequences
        max_tokens = request.maxTokens + (request.thinkingBudget ?? 0)
        thinking = request.thinkingBudget.map { Thinking(budget_tokens: $0) }
        system = request.system.flatMap { $0.isEmpty ? nil : Content($0, cached: request.cachesPrompt) }
        messages = request.messages.map { Message($0, cached: request.cachesPrompt && $0.cacheBreakpoint) }
        if !request.tools.isEmpty {
            tools = request.tools.map { Tool(name: $0.name, description: $0.description, input_schema: $0.inputSchema) }
            tool_choice = request.toolChoice == .none ? ToolChoice(type: "none") : nil
        }
    }
}
