import Foundation
import Vapor

/// A message as a share shows it: the contract's `Message` without its usage (what a reply cost
/// is its owner's business), reasoning and tool calls included.
struct SharedMessage: Codable, Equatable, Sendable {
    var id: String
    var role: MessageRole
    var content: String
    var attachments: [FileResponse]
    var reasoning: String?
    var status: MessageStatus
    var model: String
    var toolCalls: [ToolCallRecord]
    var createdAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, role, content, attachments, reasoning, status, model, toolCalls = "tool_calls", createdAt = "created_at"
    }

    init(_ message: MessageResponse) {
        id = message.id
        role = message.role
        content = message.content
        attachments = message.attachments
        reasoning = message.reasoning
        status = message.status
        model = message.model
        toolCalls = message.toolCalls
        createdAt = message.createdAt
    }

    /// Every field is always present (absent values are `null`).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(role, forKey: .role)
        try container.encode(content, forKey: .content)
        try container.encode(attachments, forKey: .attachments)
        try container.encode(reasoning, forKey: .reasoning)
        try container.encode(status, forKey: .status)
        try container.encode(model, forKey: .model)
        try container.encode(toolCalls, forKey: .toolCalls)
        try container.encode(createdAt, forKey: .createdAt)
    }
}

/// `GET /api/shares/<id>/`: the snapshot.
struct SharedConversation: Content {
    var title: String
    var createdAt: Date
    var messages: [SharedMessage]

    enum CodingKeys: String, CodingKey {
        case title, createdAt = "created_at", messages
    }
}

/// The contract's `Share`: a link of the caller's.
struct ShareResponse: Content {
    var id: String
    var chatID: String
    var url: String
    var createdAt: Date
    var expiresAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, chatID = "chat_id", url, createdAt = "created_at", expiresAt = "expires_at"
    }

    init(_ share: ShareLink, publicURL: String) throws {
        id = try share.requireID()
        chatID = share.$chat.id.lowercased
        url = publicURL + "/s/" + id
        createdAt = share.createdAt
        expiresAt = share.expiresAt
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(chatID, forKey: .chatID)
        try container.encode(url, forKey: .url)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(expiresAt, forKey: .expiresAt)
    }
}
