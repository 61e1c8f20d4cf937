import AnthropicEmulator
@testable import App
import Fluent
import Foundation
import SQLKit
import Testing
import VaporTesting

/// Every reply's usage is recorded once, whatever its end — stopped, cut short, failed, its chat
/// deleted, its server gone — and replies in flight hold their prompt's estimate against the quota.
@Suite("Reply usage")
struct ReplyUsageTests {
    /// The caller's usage today.
    static func usage(_ t: TestApp, _ token: String) async throws -> [String: Any] {
        try await t.send(.GET, "/api/usage/", token: token).jsonObject()
    }

    @Test("a stopped reply counts the input the provider reported and its output so far, estimated; stopping is no way around the quota",
          arguments: TestDatabase.all)
    func stoppingIsCounted(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["QUOTA_TOKENS_PER_DAY": "300"], emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.setDefault(.reply(Script.Reply(["First words", " and more"], pauseAfter: 1, inputTokens: 80)))
            let session = try await t.register()
            var refused = false
            for round in 1...10 {
                let created = try await t.send(.POST, "/api/chat/", json: ["content": "Question \(round)"], token: session.access)
                if created.status == .tooManyRequests {
                    #expect(try created.problem().code == "quota_exceeded")
                    refused = true
                    break
                }
                let chat = try created.jsonObject()
                try await waitUntil("the first delta") { emulator.pausedCount == round }
                let stopped = try await t.send(.POST, "/api/chat/\(chat.id)/stop/", token: session.access).jsonObject()
                #expect(stopped["status"] as? String == "cancelled")
                #expect(stopped["input_tokens"] as? Int == 80, "the input the provider reported at the start")
                #expect(stopped["output_tokens"] as? Int ?? 0 >= 1)
                #expect(stopped["usage_estimated"] as? Bool == true)
            }
            #expect(refused, "the quota was reached by stopping replies")
            let usage = try await Self.usage(t, session.access)
            #expect(usage["input_tokens"] as? Int ?? 0 >= 240)
            #expect((usage["replies"] as? Int ?? 0) >= 3)
        }
    }

    @Test("a reply whose chat is deleted mid-way is counted for its user", arguments: TestDatabase.all)
    func deletedChatIsCounted(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Some", " text"], pauseAfter: 1, inputTokens: 70)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Go")
            try await waitUntil("the first delta") { emulator.pausedCount == 1 }
            #expect(try await t.send(.DELETE, "/api/chat/\(chat.id)/", token: session.access).status == .noContent)
            try await waitUntil("the usage to be recorded") { try await Self.usage(t, session.access)["replies"] as? Int == 1 }
            let usage = try await Self.usage(t, session.access)
            #expect(usage["input_tokens"] as? Int == 70)
            #expect(usage["output_tokens"] as? Int ?? 0 >= 1)
        }
    }

    @Test("a reply that fails after its first text counts what the provider reported, and its text", arguments: TestDatabase.all)
    func failedIsCounted(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Cut", " short here"], inputTokens: 60, endAbruptly: true)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Go")
            let reply = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            #expect(reply["status"] as? String == "failed")
            #expect(reply["input_tokens"] as? Int == 60)
            #expect(reply["output_tokens"] as? Int == ReplyUsage.estimatedTokens("Cut short here"))
            #expect(reply["usage_estimated"] as? Bool == true)
            // A reply that completes carries the provider's figures, not an estimate.
            emulator.enqueue(.reply(Script.Reply(["Whole"], inputTokens: 9)))
            let turn = try await t.sendMessage("Again", chat: chat.id, token: session.access)
            let whole = try await t.waitForReply(turn.assistant.id, chat: chat.id, token: session.access)
            #expect(whole["usage_estimated"] as? Bool == false)
            #expect(try await Self.usage(t, session.access)["input_tokens"] as? Int == 69)
        }
    }

    @Test("replies in flight hold their prompt against the quota: concurrent starts cannot overrun it", arguments: TestDatabase.all)
    func inFlightReservations(_ database: TestDatabase) async throws {
        // A 300-character question is estimated at 104 tokens: with 0, 104 and 208 held a reply may
        // start under 300; with 312 held, not.
        try await database.onFile { file in try await withTestApp(database, settings: file.merging(["QUOTA_TOKENS_PER_DAY": "300"]) { $1 },
                                                                emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.setDefault(.reply(Script.Reply(["Wait"], pauseAfter: 0, inputTokens: 1)))
            let session = try await t.register()
            let question = String(repeating: "q", count: 300)
            let statuses = try await withThrowingTaskGroup(of: HTTPStatus.self) { group in
                for _ in 0..<8 {
                    group.addTask { try await t.send(.POST, "/api/chat/", json: ["content": question], token: session.access).status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            // SQLite may answer a start that waited too long for its write lock 503 (busy, nothing
            // stored); whatever the order, no more than three start.
            let created = statuses.filter { $0 == .created }.count
            #expect(created <= 3 && created >= 1, "\(statuses)")
            #expect(statuses.allSatisfy { [.created, .tooManyRequests, .serviceUnavailable].contains($0) }, "\(statuses)")
            #expect(statuses.contains(.tooManyRequests), "\(statuses)")
            // Started one after another, the fourth is refused whatever happened above.
            var started = created
            while started < 3 {
                #expect(try await t.send(.POST, "/api/chat/", json: ["content": question], token: session.access).status == .created)
                started += 1
            }
            let fourth = try await t.send(.POST, "/api/chat/", json: ["content": question], token: session.access)
            #expect(fourth.status == .tooManyRequests)
            #expect(try fourth.problem().code == "quota_exceeded")
            let chats = try await t.send(.GET, "/api/chat/", token: session.access).jsonObject()
            #expect((chats["results"] as? [Any])?.count == 3, "a refused start stored nothing")
            emulator.openGate()
        } }
    }

    @Test("a reply whose server died is failed by the lease with its usage estimated: the prompt it reserved, the text it saved",
          arguments: TestDatabase.all)
    func abandonedIsCounted(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["REPLY_LEASE": "30s"]) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Lost")
            let chatID = try #require(UUID(uuidString: chat.id))
            let message = Message(chatID: chatID, sequence: 1, role: .assistant, content: "Saved so far", status: .streaming,
                                  model: "offline", heartbeatAt: t.clock.now())
            message.reservedTokens = 50
            try await message.create(on: t.db)
            t.clock.advance(by: 60)
            await (try t.services).chat.runner.recoverInterruptedReplies()
            let stored = try #require(try await ChatReads.message(try message.requireID(), on: t.db))
            #expect(stored.status == .failed)
            #expect(stored.inputTokens == 50 && stored.outputTokens == ReplyUsage.estimatedTokens("Saved so far"))
            #expect(stored.usageEstimated)
            let usage = try await Self.usage(t, session.access)
            #expect(usage["input_tokens"] as? Int == 50 && usage["replies"] as? Int == 1)
        }
    }

    @Test("estimates: nothing reported and no text is nothing; a reported start keeps its input; a final figure is exact")
    func estimates() {
        var usage = ReplyUsage()
        usage.promptEstimate = 40
        #expect(usage.accounted(text: "", completion: nil).usage == .init())
        #expect(usage.accounted(text: "abcdef", completion: nil).usage == .init(inputTokens: 40, outputTokens: 2))
        usage.note(.init(inputTokens: 12, outputTokens: 1), final: false)
        #expect(usage.accounted(text: "", completion: nil).usage == .init(inputTokens: 12, outputTokens: 1))
        #expect(usage.accounted(text: String(repeating: "x", count: 30), completion: nil).usage == .init(inputTokens: 12, outputTokens: 10))
        usage.note(.init(inputTokens: 12, outputTokens: 3), final: true)
        #expect(usage.accounted(text: String(repeating: "x", count: 30), completion: nil) == (.init(inputTokens: 12, outputTokens: 3), false))
    }
}
