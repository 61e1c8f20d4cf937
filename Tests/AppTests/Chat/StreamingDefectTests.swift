import AnthropicEmulator
@testable import App
import Fluent
import Foundation
import NIOConcurrencyHelpers
import Providers
import SQLKit
import Testing
import VaporTesting

/// The defects a read of the streaming path found (issue 12), each shown fixed.
@Suite("Streaming path defects")
struct StreamingDefectTests {
    @Test("text that shares a network read with an error is streamed and stored before the reply fails", arguments: TestDatabase.all)
    func textBeforeErrorInOneRead(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            let chunks = ["All", " of", " this", " arrives", " in", " one", " read"]
            emulator.enqueue(.reply(Script.Reply(chunks, errorAfterChunks: "api_error", coalesced: true)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                let turn = try await t.sendMessage("hi", chat: chat.id, token: session.access)
                let events = try await stream.waitForDone(turn.assistant.id)
                stream.close()
                #expect(events.replyText(turn.assistant.id) == chunks.joined())
                #expect(events.last?.json["status"] as? String == "failed")
                #expect(events.last?.json["content"] as? String == chunks.joined())
            }
            let stored = try await t.chat(chat.id, token: session.access).messages[1]
            #expect(stored["content"] as? String == chunks.joined())
            #expect(stored["status"] as? String == "failed")
            #expect(emulator.requests.count == 1, "text had been handed out: no retry")
        }
    }

    @Test("a stop that comes before the reply has its task stops it as soon as it has one, not only its row")
    func stopBeforeTask() async throws {
        try await withTestApp(.sqlite, emulated: true) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "first")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            let services = try t.services
            // A turn stored as `send` stores it, and its reply registered as `start` does, before its task exists.
            let chatID = try #require(UUID(uuidString: chat.id))
            let message = Message(chatID: chatID, sequence: 4, role: .assistant, content: "", status: .streaming,
                                  model: "claude-sonnet-5-5", heartbeatAt: t.clock.now())
            try await message.create(on: t.db)
            let announced = try MessageResponse(message)
            let reply = RunningReply(job: ReplyJob(userID: try #require(UUID(uuidString: session.user.id)), chatID: chatID,
                                                   messageID: try message.requireID(), sequence: 4,
                                                   model: "claude-sonnet-5-5", system: nil, announced: announced))
            #expect(services.chat.replies.register(reply))

            let stopping = Task { try await services.chat.runner.stop(chat: chatID) }
            try await waitUntil("the stop to reach the reply") { reply.stopReason == .stoppedByUser }
            #expect(try await Message.find(message.id, on: t.db)?.status == .streaming, "the row is not marked alone")

            // The reply's task arrives: it is cancelled at once, and what it stores is what stop answers.
            let sawCancellation = NIOLockedValueBox(false)
            var cancelled = announced
            cancelled.status = .cancelled
            reply.attach(Task { [cancelled] in
                try? await Task.sleep(for: .seconds(10))  // as an upstream request would wait
                sawCancellation.withLockedValue { $0 = Task.isCancelled }
                reply.finished(cancelled)
            })
            let stopped = try await stopping.value
            #expect(sawCancellation.withLockedValue { $0 }, "the task, and its upstream request, were cancelled")
            #expect(stopped.status == .cancelled)
        }
    }

    @Test("a checkpoint whose write fails is written again at the next one", arguments: TestDatabase.all)
    func failedCheckpointRetried(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Saved", " part", " later"], pauseAfter: 2)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "hi")
            let messageID = try #require(UUID(uuidString: chat.messages[1].id))
            let runner = try t.services.chat.runner
            try await waitUntil("the text so far") {
                try await t.chat(chat.id, token: session.access).messages[1]["content"] as? String == "Saved part"
            }

            // The database refuses the write (the table is away for a moment)...
            let sql = try t.db.sql()
            try await sql.raw("ALTER TABLE messages RENAME TO messages_away").run()
            await runner.checkpoint()
            try await sql.raw("ALTER TABLE messages_away RENAME TO messages").run()
            #expect(try await Message.find(messageID, on: t.db)?.content == "")

            // ...and the next checkpoint writes the same text, nothing new having arrived.
            await runner.checkpoint()
            #expect(try await Message.find(messageID, on: t.db)?.content == "Saved part")
            emulator.openGate()
        }
    }

    @Test("shutdown waits for the upkeep loops to end before the database closes")
    func shutdownAwaitsLoops() async throws {
        try await withTestApp(.sqlite, settings: ["SSE_KEEPALIVE_INTERVAL": "0.05", "REPLY_CHECKPOINT_INTERVAL": "0.05",
                                                  "REPLY_LEASE": "1"]) { t in
            let background = try t.services.chat.background
            #expect(background.runningLoops == 4, "streams, replies, the providers' models and the sweep of unattached files")
            await background.shutdownAsync(t.app)
            #expect(background.runningLoops == 0, "every loop had ended when shutdown returned")
        }
    }
}

@Suite("Shutting down")
struct ShutdownTests {
    @Test("shutdown gives up a title still being asked for before the database closes; the placeholder stays")
    func titleInFlight() async throws {
        try await withTestApp(.sqlite, emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueueTitle(.hangBeforeHeaders)
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Name me")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            try await waitUntil("the title request") { !emulator.titleRequests.isEmpty }
            let runner = try t.services.chat.runner
            #expect(runner.followUps.count == 1)
            await runner.drain(timeout: .zero)
            #expect(runner.followUps.count == 0, "nothing is left to touch the database when drain returns")
            #expect(try await t.chat(chat.id, token: session.access)["title"] as? String == "Name me")
        }
    }

    @Test("work that outlives the database (a late title, a notification) gets an error, not a crash")
    func databaseAfterShutdown() async throws {
        try await withTestApp(.sqlite) { t in
            let access = DatabaseSetup.access(t.app)
            _ = try access()
            try await t.app.asyncShutdown()
            #expect(throws: DatabaseClosed.self) { try access() }
        }
    }
}

@Suite("Long chats")
struct LongChatTests {
    /// A small context (2,000 tokens, 500 of them for the reply) that a few long messages outgrow.
    static let smallContext = ["ANTHROPIC_CONTEXT_WINDOW": "2000", "ANTHROPIC_MAX_TOKENS": "500"]

    @Test("a chat longer than the model's context still gets replies; the oldest turns are left out and counted", arguments: TestDatabase.all)
    func contextBudget(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: Self.smallContext, emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.setDefault(.reply(["Short", " answer."]))
            let session = try await t.register()
            let long = String(repeating: "word ", count: 300)  // 1,500 bytes, about 500 tokens
            let chat = try await t.createChat(token: session.access, content: "first " + long, system: "Be kind.")
            var last = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            #expect(last["omitted_messages"] as? Int == 0)
            for n in 2...5 {
                let turn = try await t.sendMessage("message \(n) " + long, chat: chat.id, token: session.access)
                last = try await t.waitForReply(turn.assistant.id, chat: chat.id, token: session.access)
                #expect(last["status"] as? String == "complete", "reply \(n)")
            }
            let request = try #require(emulator.requests.last)
            #expect(request.system == "Be kind.", "the system prompt is always sent")
            #expect(request.messages.last?.content.hasPrefix("message 5") == true, "the latest user turn is always sent")
            #expect(request.messages.first?.role == "user")
            #expect(request.messages.count < 9, "older turns were left out")
            let omitted = try #require(last["omitted_messages"] as? Int)
            #expect(omitted == 9 - request.messages.count)
            let sentBytes = request.messages.reduce(0) { $0 + $1.content.utf8.count }
            #expect(sentBytes / 3 <= 1500)
        }
    }

    @Test("a chat holding CHAT_MAX_MESSAGES takes no more: 409, and nothing stored", arguments: TestDatabase.all)
    func messageCap(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["CHAT_MAX_MESSAGES": "4"], emulated: true) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "one")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            let second = try await t.sendMessage("two", chat: chat.id, token: session.access)
            try await t.waitForReply(second.assistant.id, chat: chat.id, token: session.access)
            let before = try await t.messageCount()

            let full = try await t.send(.POST, "/api/chat/\(chat.id)/send/", json: ["content": "three"], token: session.access)

            #expect(full.status == .conflict)
            #expect(try full.problem().title == "Chat is full")
            #expect(try await t.messageCount() == before)
        }
    }
}
