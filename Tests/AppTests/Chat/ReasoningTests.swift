import AnthropicEmulator
@testable import App
import Foundation
import Providers
import SQLKit
import Testing
import VaporTesting

/// A way reasoning reaches the server: Anthropic's extended thinking, or one of the three shapes
/// OpenAI-compatible servers send it in.
struct ReasoningCase: Sendable, CustomTestStringConvertible {
    var api: UpstreamAPI
    /// OpenAI's shape; nil for Anthropic's thinking blocks.
    var style: Script.ReasoningStyle?

    var testDescription: String {
        switch style {
        case nil: "Anthropic thinking"
        case .reasoningContent: "reasoning_content"
        case .reasoningField: "reasoning"
        case .think: "<think>"
        }
    }

    static let all = [ReasoningCase(api: .anthropic, style: nil), ReasoningCase(api: .openai, style: .reasoningContent),
                      ReasoningCase(api: .openai, style: .reasoningField), ReasoningCase(api: .openai, style: .think)]

    /// A reply that reasons, then answers, pausing after the answer's first piece.
    func reply(reasoning: [String], answer: [String]) -> Script {
        var reply = Script.Reply(answer, pauseAfter: 1, reasoning: reasoning)
        if let style { reply.reasoningStyle = style }
        return .reply(reply)
    }

    /// Anthropic thinks only when asked, per model.
    var settings: [String: String] { api == .anthropic ? ["ANTHROPIC_THINKING": "claude-sonnet-5-5=2048"] : [:] }
}

@Suite("Reasoning, kept apart from the answer")
struct ReasoningTests {
    static let reasoning = ["Weigh ", "the ", "question ", "😀."]
    static let answer = ["The ", "answer."]

    @Test("reasoning streams as reasoning events before the answer, resumes by id, is stored apart and never sent back",
          arguments: ReasoningCase.all, TestDatabase.all)
    func keptApart(_ kind: ReasoningCase, _ database: TestDatabase) async throws {
        try await withTestApp(database, settings: kind.settings, emulated: true, api: kind.api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(kind.reply(reasoning: Self.reasoning, answer: Self.answer))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            let reasoning = Self.reasoning.joined(), answer = Self.answer.joined()
            try await t.withLiveServer { base in
                let path = "/api/chat/\(chat.id)/messages/"
                let stream = try await EventStreamClient.open(base, path, token: session.access)
                let turn = try await t.sendMessage("Why?", chat: chat.id, token: session.access)
                let id = turn.assistant.id
                let first = try await stream.waitFor("the reasoning, then the answer's first piece") { $0.replyText(id) == "The " }
                stream.close()

                let pieces = first.filter { $0.type == "reasoning" || $0.type == "delta" }
                #expect(pieces.map(\.type) == Array(repeating: "reasoning", count: pieces.count - 1) + ["delta"])
                #expect(first.reasoningText(id) == reasoning)
                #expect(pieces.filter { $0.type == "reasoning" }.last?.id == "2-\(reasoning.utf8.count)", "reasoning is segment 0")
                #expect(pieces.last?.id == "2.1-4", "the answer is segment 1")
                // the chat shows both so far, apart
                let midway = try await t.chat(chat.id, token: session.access).messages[1]
                #expect(midway["reasoning"] as? String == reasoning)
                #expect(midway["content"] as? String == "The ")

                // resumed after the first reasoning event: the rest of the reasoning, then the answer, nothing twice
                let resumeFrom = try #require(pieces.first)
                let resumed = try await EventStreamClient.open(base, path, token: session.access, lastEventID: resumeFrom.id)
                emulator.openGate()
                let after = try await resumed.waitForDone(id)
                resumed.close()
                #expect(!after.contains { $0.type == "message" })
                let rest = after.filter { $0.type == "reasoning" }.map { $0.json["text"] as? String ?? "" }.joined()
                #expect((resumeFrom.json["text"] as? String ?? "") + rest == reasoning)
                #expect(after.filter { $0.type == "delta" }.map { $0.json["text"] as? String ?? "" }.joined() == answer)
                let done = try #require(after.last?.json)
                #expect(done["content"] as? String == answer)
                #expect(done["reasoning"] as? String == reasoning)
            }
            let stored = try await t.chat(chat.id, token: session.access).messages[1]
            #expect(stored["content"] as? String == answer)
            #expect(stored["reasoning"] as? String == reasoning)
            #expect(stored["output_tokens"] as? Int == Self.reasoning.count + Self.answer.count, "reasoning tokens are output tokens")

            // The next turn sends the answer back, never the reasoning.
            let next = try await t.sendMessage("And then?", chat: chat.id, token: session.access)
            #expect(try await t.waitForReply(next.assistant.id, chat: chat.id, token: session.access)["reasoning"] is NSNull)
            let request = try #require(emulator.requests.last)
            #expect(request.messages.map(\.content) == ["Why?", answer, "And then?"])

            let signatures = try await t.db.sql().raw("SELECT reasoning_signature FROM messages WHERE reasoning_signature IS NOT NULL")
                .all(decoding: SignatureRow.self).map(\.reasoning_signature)
            if kind.api == .anthropic {
                #expect(emulator.requests[0].thinkingBudget == 2048)
                #expect(emulator.requests[0].maxTokens == 4096 + 2048, "the budget comes on top of the answer's tokens")
                #expect(signatures == ["EqQBCgIYAhIM"], "the thinking block's signature is kept, for a tool loop to send back")
            } else {
                #expect(emulator.requests[0].thinkingBudget == nil)
                #expect(signatures.isEmpty)
            }
        }
    }

    @Test("a reply stopped while it reasons keeps its reasoning and no answer; stored cancelled", arguments: UpstreamAPI.allCases)
    func stoppedWhileReasoning(_ api: UpstreamAPI) async throws {
        let kind = ReasoningCase.all.first { $0.api == api } ?? ReasoningCase.all[0]
        try await withTestApp(.sqlite, settings: kind.settings, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            var reply = Script.Reply(["Never", " said"], pauseAfter: 0, reasoning: ["Thinking", " it over"])
            if let style = kind.style { reply.reasoningStyle = style }
            emulator.enqueue(.reply(reply))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Hmm?")
            try await waitUntil("the reasoning to arrive") {
                try await t.chat(chat.id, token: session.access).messages[1]["reasoning"] as? String == "Thinking it over"
            }
            let stopped = try await t.send(.POST, "/api/chat/\(chat.id)/stop/", token: session.access).jsonObject()
            #expect(stopped["status"] as? String == "cancelled")
            #expect(stopped["reasoning"] as? String == "Thinking it over")
            #expect(stopped["content"] as? String == "")
            #expect(stopped["usage_estimated"] as? Bool == true)
            #expect(stopped["output_tokens"] as? Int ?? 0 >= 1, "reasoning costs tokens, counted though no answer came")
        }
    }

    @Test("reasoning crosses instances with the same ids, piece by piece", arguments: UpstreamAPI.allCases)
    func acrossInstances(_ api: UpstreamAPI) async throws {
        let kind = ReasoningCase.all.first { $0.api == api } ?? ReasoningCase.all[0]
        try await withTwoInstances(settings: kind.settings, api: api) { a, b, _ in
            let emulator = try #require(a.emulator)
            emulator.enqueue(kind.reply(reasoning: Self.reasoning, answer: Self.answer))
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access)
            try await a.withLiveServer { baseA in
                try await b.withLiveServer { baseB in
                    let path = "/api/chat/\(chat.id)/messages/"
                    let onA = try await EventStreamClient.open(baseA, path, token: session.access)
                    let onB = try await EventStreamClient.open(baseB, path, token: session.access)
                    let turn = try await a.sendMessage("Why?", chat: chat.id, token: session.access)
                    try await onB.waitFor("the answer's first piece on the other instance") { $0.replyText(turn.assistant.id) == "The " }
                    emulator.openGate()
                    let seenOnA = try await onA.waitForDone(turn.assistant.id)
                    let seenOnB = try await onB.waitForDone(turn.assistant.id)
                    onA.close()
                    onB.close()
                    #expect(seenOnB.reasoningText(turn.assistant.id) == Self.reasoning.joined())
                    #expect(seenOnB.replyText(turn.assistant.id) == Self.answer.joined())
                    let ids = { (events: [ServerSentEventParser.Event]) in
                        events.filter { $0.type == "reasoning" || $0.type == "delta" }.compactMap(\.id)
                    }
                    #expect(Set(ids(seenOnB)).isSubset(of: Set(ids(seenOnA))), "pieces may join on the way, at the same positions")
                    #expect(ids(seenOnB).last == ids(seenOnA).last)

                    // An id one instance handed out mid-reasoning resumes on the other.
                    let firstOnA = try #require(seenOnA.first { $0.type == "reasoning" })
                    let resumed = try await EventStreamClient.open(baseB, path, token: session.access, lastEventID: firstOnA.id)
                    let rest = try await resumed.waitForDone(turn.assistant.id)
                    resumed.close()
                    #expect(!rest.contains { $0.type == "message" })
                    #expect((firstOnA.json["text"] as? String ?? "") + rest.filter { $0.type == "reasoning" }.map { $0.json["text"] as? String ?? "" }.joined()
                        == Self.reasoning.joined())
                    #expect(rest.filter { $0.type == "delta" }.map { $0.json["text"] as? String ?? "" }.joined() == Self.answer.joined())
                }
            }
        }
    }
}

private struct SignatureRow: Decodable {
    var reasoning_signature: String
}
