@testable import App
import Providers
import Foundation
import Testing
import VaporTesting

extension TestApp {
    /// Creates a chat through the API; with `content`, its reply starts.
    func createChat(token: String, title: String? = nil, content: String? = nil, model: String? = nil, system: String? = nil,
                    sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any] {
        var json: [String: Any] = [:]
        if let title { json["title"] = title }
        if let content { json["content"] = content }
        if let model { json["model"] = model }
        if let system { json["system"] = system }
        let response = try await send(.POST, "/api/chat/", json: json, token: token, sourceLocation: sourceLocation)
        try #require(response.status == .created, "create answered \(response.status): \(response.body.string)", sourceLocation: sourceLocation)
        return try response.jsonObject()
    }

    /// Sends a message; returns (user message, assistant message).
    func sendMessage(_ content: String, chat: String, token: String,
                     sourceLocation: SourceLocation = #_sourceLocation) async throws -> (user: [String: Any], assistant: [String: Any]) {
        let response = try await send(.POST, "/api/chat/\(chat)/send/", json: ["content": content], token: token, sourceLocation: sourceLocation)
        try #require(response.status == .accepted, "send answered \(response.status): \(response.body.string)", sourceLocation: sourceLocation)
        let body = try response.jsonObject()
        return (try #require(body["user_message"] as? [String: Any]), try #require(body["assistant_message"] as? [String: Any]))
    }

    func chat(_ id: String, token: String) async throws -> [String: Any] {
        let response = try await send(.GET, "/api/chat/\(id)/", token: token)
        try #require(response.status == .ok)
        return try response.jsonObject()
    }

    /// Polls the chat until message `messageID` is no longer streaming; returns it.
    @discardableResult
    func waitForReply(_ messageID: String, chat: String, token: String, timeout: Duration = .seconds(10),
                      sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let messages = try await self.chat(chat, token: token)["messages"] as? [[String: Any]] ?? []
            if let message = messages.first(where: { $0["id"] as? String == messageID }), message["status"] as? String != "streaming" {
                return message
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("the reply \(messageID) did not finish", sourceLocation: sourceLocation)
        throw CancellationError()
    }

    /// Waits for reply `messageID` to end while moving the model provider's clock on by `step`
    /// whenever every request the emulator got has gone silent and `ready` holds: so a provider
    /// timeout fires only once everything the test waits for has arrived, however slow the machine.
    @discardableResult
    func waitForReplyMovingProviderClock(_ messageID: String, chat: String, token: String, by step: Duration,
                                         when ready: () async throws -> Bool = { true },
                                         sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any] {
        let emulator = try #require(self.emulator, sourceLocation: sourceLocation)
        var ended: [String: Any]?
        try await waitUntil("the reply \(messageID) to end", timeout: .seconds(20), sourceLocation: sourceLocation) {
            let messages = try await self.chat(chat, token: token).messages
            if let message = messages.first(where: { $0.id == messageID }), message["status"] as? String != "streaming" {
                ended = message
                return true
            }
            let requestsSent = try services.chat.catalog.providers.reduce(0) { sent, provider in
                sent + ((provider.client as? AnthropicClient)?.requestsSent ?? (provider.client as? OpenAIClient)?.requestsSent ?? 0)
            }
            let allSilent = emulator.silentCount > 0 && emulator.silentCount == emulator.requests.count
                && emulator.requests.count == requestsSent
            if allSilent, providerClock.sleeperCount > 0, try await ready() { providerClock.advance(by: step) }
            return false
        }
        return try #require(ended, sourceLocation: sourceLocation)
    }

    func messageCount() async throws -> Int {
        try await Message.query(on: db).count()
    }
}

extension Dictionary where Key == String, Value == Any {
    var id: String { self["id"] as? String ?? "" }
    var messages: [[String: Any]] { self["messages"] as? [[String: Any]] ?? [] }
}
