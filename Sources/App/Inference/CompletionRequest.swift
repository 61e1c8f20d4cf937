import Foundation
import Providers

/// The body of `POST /v1/chat/completions`, as OpenAI's Chat Completions API takes it: the fields
/// this server honours are decoded; any other is ignored, as OpenAI's own SDKs expect of a server.
struct CompletionRequest: Decodable, Sendable {
    struct Message: Decodable, Sendable {
        var role: String
        /// Absent or null only where OpenAI allows it (an assistant turn of tool calls alone).
        var content: Content?
    }

    /// A plain string, or parts (`text`, `image_url`).
    enum Content: Decodable, Sendable {
        case text(String)
        case parts([Part])

        init(from decoder: any Decoder) throws {
            if let text = try? decoder.singleValueContainer().decode(String.self) {
                self = .text(text)
                return
            }
            // Parts one by one, at most ``CompletionRequest/maxParts``: a body of tiny parts is
            // refused before it is all decoded.
            var container = try decoder.unkeyedContainer()
            var parts: [Part] = []
            while !container.isAtEnd {
                guard parts.count < CompletionRequest.maxParts else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription: "At most \(CompletionRequest.maxParts) parts a message.")
                }
                parts.append(try container.decode(Part.self))
            }
            self = .parts(parts)
        }
    }

    /// A value whose presence alone matters (`tools`): nothing of it is kept.
    struct Present: Decodable, Sendable {
        init(from decoder: any Decoder) throws {}
    }

    struct Part: Decodable, Sendable {
        struct ImageURL: Decodable, Sendable {
            var url: String
        }

        var type: String
        var text: String?
        var image_url: ImageURL?
    }

    /// `stop`: one string or several.
    enum Stop: Decodable, Sendable {
        case one(String)
        case several([String])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let one = try? container.decode(String.self) {
                self = .one(one)
            } else {
                self = .several(try container.decode([String].self))
            }
        }

        var all: [String] {
            switch self {
            case .one(let one): [one]
            case .several(let several): several
            }
        }
    }

    struct StreamOptions: Decodable, Sendable {
        var include_usage: Bool?
    }

    /// `messages`, decoded one by one and at most ``CompletionRequest/maxMessages`` of them.
    struct Messages: Decodable, Sendable {
        var items: [Message] = []

        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            while !container.isAtEnd {
                guard items.count < CompletionRequest.maxMessages else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription: "Expected 1 to \(CompletionRequest.maxMessages) messages.")
                }
                items.append(try container.decode(Message.self))
            }
        }
    }

    var model: String
    var messages: Messages
    var stream: Bool?
    var stream_options: StreamOptions?
    var max_tokens: Int?
    var max_completion_tokens: Int?
    var temperature: Double?
    var stop: Stop?
    var n: Int?
    var tools: [Present]?

    /// The most messages one request may hold, and images it may carry.
    static let maxMessages = 1000
    static let maxParts = 100
    static let maxImages = 20
    /// Field errors told at most (a request of many bad parts gets a short answer).
    static let maxErrors = 20
    /// OpenAI's own limits on `stop`.
    static let maxStopSequences = 4
    static let maxStopSequenceBytes = 1000
    /// The most tokens a reply may be asked for (above any model's output).
    static let maxTokensLimit = 1_000_000
}

/// A request of ``CompletionRequest`` checked, in the shape the provider takes.
struct CompletionSpec: Sendable {
    var model: String
    var system: String?
    var messages: [ModelMessage]
    var maxTokens: Int?
    var temperature: Double?
    var stop: [String]
    var stream: Bool
    var includeUsage: Bool
    /// The prompt's size as estimated before it is sent (what the quota reserves).
    var promptEstimate: Int
    /// Images in it, for the model's capabilities to be checked against.
    var images: [CompletionImage]
}

/// An image of a request, from its data URL, as its bytes say it is.
struct CompletionImage: Sendable {
    var format: ImageFormat
    var width: Int
    var height: Int
    var data: Data
    /// Where it was (`messages.2.content.0.image_url`).
    var field: String
}

extension CompletionRequest {
    /// The request checked field by field (400 naming the field), in the provider's shape.
    func validated() throws -> CompletionSpec {
        var errors: [String: [String]] = [:]
        if model.isEmpty { errors["model", default: []].append("Name a model of GET /v1/models.") }
        if let n, n != 1 { errors["n", default: []].append("Only one choice is generated: n must be 1.") }
        if let tools, !tools.isEmpty {
            errors["tools", default: []].append("Tools are not offered through /v1 yet; send the request without them.")
        }
        let maxTokens = max_completion_tokens ?? max_tokens
        if let maxTokens, !(1...Self.maxTokensLimit).contains(maxTokens) {
            errors[max_completion_tokens != nil ? "max_completion_tokens" : "max_tokens", default: []]
                .append("Expected a number of tokens from 1 to \(Self.maxTokensLimit).")
        }
        if let temperature, !(temperature.isFinite && (0...2).contains(temperature)) {
            errors["temperature", default: []].append("Expected a number from 0 to 2.")
        }
        let stops = stop?.all ?? []
        if stops.count > Self.maxStopSequences {
            errors["stop", default: []].append("At most \(Self.maxStopSequences) stop sequences.")
        }
        if stops.contains(where: { $0.isEmpty || $0.utf8.count > Self.maxStopSequenceBytes }) {
            errors["stop", default: []].append("Each stop sequence holds 1 to \(Self.maxStopSequenceBytes) bytes.")
        }
        let messages = self.messages.items
        if messages.isEmpty {
            errors["messages", default: []].append("Expected 1 to \(Self.maxMessages) messages.")
        }
        let imageParts = messages.reduce(0) { count, message in
            guard case .parts(let parts)? = message.content else { return count }
            return count + parts.count { $0.type == "image_url" }
        }
        if imageParts > Self.maxImages {
            errors["messages", default: []].append("At most \(Self.maxImages) images a request.")
        }
        var conversation = Conversation()
        if errors.isEmpty {
            for (index, message) in messages.enumerated() where errors.count < Self.maxErrors {
                conversation.add(message, at: "messages.\(index)", errors: &errors)
            }
        }
        if errors.isEmpty, !conversation.messages.contains(where: { $0.role == .user }) {
            errors["messages", default: []].append("Expected at least one user message.")
        }
        guard errors.isEmpty else {
            throw RequestError.invalidFields(Dictionary(uniqueKeysWithValues: errors.sorted { $0.key < $1.key }.prefix(Self.maxErrors).map { ($0.key, $0.value) }))
        }
        let system = conversation.system.isEmpty ? nil : conversation.system.joined(separator: "\n\n")
        return CompletionSpec(model: model, system: system, messages: conversation.messages, maxTokens: maxTokens,
                              temperature: temperature, stop: stops, stream: stream ?? false,
                              includeUsage: stream_options?.include_usage ?? false,
                              promptEstimate: conversation.estimate + (system.map(ConversationWindow.estimatedTokens) ?? 0),
                              images: conversation.images)
    }
}

/// The messages of a request as they are read: system turns gathered into one prompt (Anthropic
/// takes it apart from the turns), images decoded from their data URLs.
private struct Conversation {
    var system: [String] = []
    var messages: [ModelMessage] = []
    var images: [CompletionImage] = []
    var estimate = 0

    mutating func add(_ message: CompletionRequest.Message, at field: String, errors: inout [String: [String]]) {
        switch message.role {
        case "system", "developer":
            guard let text = text(of: message.content, at: field, errors: &errors) else { return }
            system.append(text)
            estimate += ConversationWindow.estimatedTokens(text)
        case "user", "assistant":
            let role: ModelMessage.Role = message.role == "user" ? .user : .assistant
            var text = ""
            var attachments: [ModelAttachment] = []
            switch message.content {
            case .none:
                errors["\(field).content", default: []].append("This message needs its content.")
                return
            case .text(let plain):
                text = plain
            case .parts(let parts):
                for (index, part) in parts.enumerated() where errors.count < CompletionRequest.maxErrors {
                    let partField = "\(field).content.\(index)"
                    switch (part.type, part.text, part.image_url) {
                    case ("text", .some(let piece), _):
                        text += text.isEmpty ? piece : "\n" + piece
                    case ("image_url", _, .some(let url)) where role == .user:
                        guard let image = Self.image(url.url, at: partField + ".image_url", errors: &errors) else { continue }
                        images.append(image)
                        attachments.append(.image(mediaType: image.format.mediaType, data: image.data))
                        estimate += min(image.width * image.height / 750, 1600) + 10
                    default:
                        errors[partField, default: []].append(role == .user
                            ? "Expected a text part ({\"type\": \"text\", \"text\"}) or an image part ({\"type\": \"image_url\", \"image_url\": {\"url\"}})."
                            : "Expected a text part ({\"type\": \"text\", \"text\"}).")
                    }
                }
            }
            messages.append(ModelMessage(role: role, content: text, attachments: attachments))
            estimate += ConversationWindow.estimatedTokens(text)
        case "tool", "function":
            errors["\(field).role", default: []].append("Tool results are not taken through /v1 yet.")
        default:
            errors["\(field).role", default: []].append("Expected system, developer, user or assistant.")
        }
    }

    /// The text of a system turn: a string, or text parts.
    private func text(of content: CompletionRequest.Content?, at field: String, errors: inout [String: [String]]) -> String? {
        switch content {
        case .text(let text): return text
        case .parts(let parts) where parts.allSatisfy({ $0.type == "text" && $0.text != nil }):
            return parts.compactMap(\.text).joined(separator: "\n")
        default:
            errors["\(field).content", default: []].append("Expected text, or text parts.")
            return nil
        }
    }

    /// The image of a data URL (`data:image/png;base64,…`), as its bytes say it is: PNG, JPEG, GIF
    /// or WebP. The server fetches no URL: an `http(s)` one would have it reach wherever a caller
    /// points it.
    private static func image(_ url: String, at field: String, errors: inout [String: [String]]) -> CompletionImage? {
        guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ","),
              url[..<comma].hasSuffix(";base64"),
              let data = Data(base64Encoded: String(url[url.index(after: comma)...]))
        else {
            errors[field, default: []].append("Expected a base64 data URL (data:image/png;base64,…): the server fetches no URL.")
            return nil
        }
        var inspector = FileInspector()
        inspector.feed(data)
        guard case .image(let format, let width, let height)? = try? inspector.finish(name: "image") else {
            errors[field, default: []].append("Expected a PNG, JPEG, GIF or WebP image.")
            return nil
        }
        return CompletionImage(format: format, width: width, height: height, data: data, field: field)
    }
}
