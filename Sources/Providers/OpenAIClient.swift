import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Any server that speaks the OpenAI Chat Completions API, streaming (`POST {baseURL}/chat/completions`
/// with `stream: true`): OpenAI itself, Ollama, vLLM, llama.cpp's server, OpenRouter, LiteLLM, …
public typealias OpenAIClient = StreamingClient<OpenAIWire>

extension StreamingClient where Wire == OpenAIWire {
    public convenience init(configuration: OpenAIConfiguration, eventLoopGroup: any EventLoopGroup = HTTPClient.defaultEventLoopGroup) {
        self.init(wire: OpenAIWire(configuration: configuration), eventLoopGroup: eventLoopGroup)
    }
}

/// How to reach an OpenAI-compatible server.
public struct OpenAIConfiguration: Sendable {
    /// The provider's name (`openai`, or a name of `PROVIDERS`).
    public var name: String
    /// The URL that ends before `/chat/completions`, usually `…/v1`; without a trailing slash.
    public var baseURL: String
    /// Sent as `Authorization: Bearer`; nil for a server that needs none (a local Ollama).
    public var apiKey: String?
    /// This server's id, sent as ``RelayHeader`` (nil: none).
    public var relayID: String?
    public var settings: ClientSettings

    public init(name: String = "openai", baseURL: String, apiKey: String? = nil, relayID: String? = nil,
                settings: ClientSettings = ClientSettings()) {
        self.name = name
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.relayID = relayID
        self.settings = settings
    }
}

/// The Chat Completions wire format: the conversation in OpenAI's shape (the system prompt first),
/// usage asked for with `stream_options.include_usage`, its chunks (``OpenAIEvents``), its error
/// bodies, and `GET {baseURL}/models`.
public struct OpenAIWire: StreamingWire {
    public typealias Reader = OpenAIEvents
    public let configuration: OpenAIConfiguration

    public init(configuration: OpenAIConfiguration) {
        self.configuration = configuration
    }

    public var settings: ClientSettings { configuration.settings }
    public var name: String { configuration.name }

    private var headers: HTTPHeaders {
        var headers = HTTPHeaders()
        if let key = configuration.apiKey { headers.add(name: "authorization", value: "Bearer \(key)") }
        if let relayID = configuration.relayID { headers.add(name: RelayHeader.name, value: relayID) }
        return headers
    }

    public func replyRequest(_ request: ModelRequest) throws -> HTTPClient.Request {
        var headers = headers
        headers.add(name: "accept", value: "text/event-stream")
        for earlier in request.relayedBy { headers.add(name: RelayHeader.name, value: earlier) }
        return try .provider(url: configuration.baseURL + "/chat/completions", headers: headers,
                             body: try JSONEncoder().encode(ChatCompletionRequestBody(request)))
    }

    public func error(status: Int, body: Data, retryAfter: Duration?) -> ProviderError {
        OpenAIErrorBody.providerError(from: body, status: status, retryAfter: retryAfter)
    }

    public func modelsRequest() throws -> HTTPClient.Request {
        try .provider(url: configuration.baseURL + "/models", method: .GET, headers: headers)
    }

    public func models(in body: Data) throws -> [String] {
        try JSONDecoder().decode(ModelList.self, from: body).data.map(\.id)
    }
}

/// The JSON body of `POST /chat/completions`.
struct ChatCompletionRequestBody: Encodable {
    struct Message: Encodable {
        var role: String
        /// Null for an assistant turn of calls alone.
        var content: Content?
        var tool_calls: [ToolCall]?
        var tool_call_id: String?

        init(role: String, content: Content?, tool_calls: [ToolCall]? = nil, tool_call_id: String? = nil) {
            (self.role, self.content, self.tool_calls, self.tool_call_id) = (role, content, tool_calls, tool_call_id)
        }

        func encode(to encoder: any Encoder) throws {
            enum Keys: String, CodingKey { case role, content, tool_calls, tool_call_id }
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(role, forKey: .role)
            try container.encode(content, forKey: .content)
            try container.encodeIfPresent(tool_calls, forKey: .tool_calls)
            try container.encodeIfPresent(tool_call_id, forKey: .tool_call_id)
        }

        /// `message` as one message, or — the results of a tool loop's calls — one `tool` message each.
        static func of(_ message: ModelMessage) -> [Message] {
            if !message.toolResults.isEmpty {
                return message.toolResults.map { Message(role: "tool", content: .text($0.content), tool_call_id: $0.callID) }
            }
            if !message.toolCalls.isEmpty {
                return [Message(role: "assistant", content: message.content.isEmpty ? nil : .text(message.content),
                                tool_calls: message.toolCalls.map(ToolCall.init))]
            }
            return [Message(role: message.role.rawValue, content: Content(message.content, attachments: message.attachments))]
        }
    }

    /// `{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}`.
    struct ToolCall: Encodable {
        struct Function: Encodable {
            var name: String
            var arguments: String
        }
        var id: String
        var type = "function"
        var function: Function

        init(_ call: ModelToolCall) {
            id = call.id
            function = Function(name: call.name, arguments: call.arguments.isObject ? call.arguments.jsonText : "{}")
        }
    }

    struct Tool: Encodable {
        struct Function: Encodable {
            var name: String
            var description: String
            var parameters: JSONValue
        }
        var type = "function"
        var function: Function
    }

    /// A plain string, or parts: attachments (`image_url` and `file` parts with data URLs, text
    /// parts) before the message's text.
    enum Content: Encodable {
        case text(String)
        case parts([Part])

        init(_ text: String, attachments: [ModelAttachment]) {
            guard !attachments.isEmpty else {
                self = .text(text)
                return
            }
            var parts = attachments.map(Part.init)
            if !text.isEmpty { parts.append(Part(type: "text", text: text)) }
            self = .parts(parts)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .text(let text): try container.encode(text)
            case .parts(let parts): try container.encode(parts)
            }
        }
    }

    struct Part: Encodable {
        struct ImageURL: Encodable { var url: String }
        struct File: Encodable {
            var filename: String
            var file_data: String
        }

        var type: String
        var text: String?
        var image_url: ImageURL?
        var file: File?

        init(type: String, text: String? = nil, image_url: ImageURL? = nil, file: File? = nil) {
            (self.type, self.text, self.image_url, self.file) = (type, text, image_url, file)
        }

        init(_ attachment: ModelAttachment) {
            switch attachment {
            case .image(let mediaType, let data):
                self.init(type: "image_url", image_url: ImageURL(url: "data:\(mediaType);base64," + data.base64EncodedString()))
            case .pdf(let name, let data):
                self.init(type: "file", file: File(filename: name, file_data: "data:application/pdf;base64," + data.base64EncodedString()))
            case .text(let name, let text):
                self.init(type: "text", text: ModelAttachment.textPart(name: name, text: text))
            }
        }
    }

    struct StreamOptions: Encodable {
        var include_usage = true
    }

    var model: String
    var messages: [Message]
    var stream = true
    var stream_options = StreamOptions()
    var max_tokens: Int
    var tools: [Tool]?
    var tool_choice: String?
    var temperature: Double?
    var stop: [String]?

    init(_ request: ModelRequest) {
        model = request.model
        temperature = request.temperature
        stop = request.stopSequences.isEmpty ? nil : request.stopSequences
        max_tokens = request.maxTokens
        let system = request.system.flatMap { $0.isEmpty ? nil : Message(role: "system", content: .text($0)) }
        messages = (system.map { [$0] } ?? []) + request.messages.flatMap(Message.of)
        if !request.tools.isEmpty {
            tools = request.tools.map { Tool(function: .init(name: $0.name, description: $0.description, parameters: $0.inputSchema)) }
            tool_choice = request.toolChoice == .none ? "none" : nil
        }
    }
}

/// An OpenAI-style error body, `{"error": {"message": "…", "type": "…", "code": …}}` (as an HTTP
/// answer, or a chunk of a stream), and what its status means.
enum OpenAIErrorBody {
    private struct Body: Decodable {
        struct Detail: Decodable {
            var message: String?
            var type: String?
        }
        var error: Detail
    }

    static func providerError(from data: Data, status: Int?, retryAfter: Duration? = nil) -> ProviderError {
        let detail = try? JSONDecoder().decode(Body.self, from: data).error
        let message = detail?.message ?? String(decoding: data.prefix(300), as: UTF8.self)
        let kind = status.map(AnthropicErrorBody.kindForStatus) ?? Self.kind(errorType: detail?.type) ?? .upstream
        return ProviderError(kind, message, status: status, retryAfter: retryAfter)
    }

    /// What an error's `type` means, for the types servers are known to send.
    static func kind(errorType: String?) -> ProviderError.Kind? {
        switch errorType {
        case "invalid_request_error": .invalidRequest
        case "authentication_error": .authentication
        case "permission_error": .permission
        case "not_found_error": .notFound
        case "rate_limit_error", "rate_limit_exceeded", "insufficient_quota": .rateLimited
        case "server_error", "api_error": .upstream
        case "overloaded_error": .overloaded
        default: nil
        }
    }
}
