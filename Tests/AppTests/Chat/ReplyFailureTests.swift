import AnthropicEmulator
@testable import App
import Fluent
import Foundation
import Testing
import VaporTesting

@Suite("When the model provider fails")
struct ReplyFailureTests {
    @Test("429 with retry-after is waited out and the reply succeeds", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func rateLimited(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.error(status: 429, type: "rate_limit_error", message: "slow down", headers: ["retry-after": "3"]), .reply(["Made", " it"]))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "hi")
            let reply = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            #expect(reply["status"] as? String == "complete")
            #expect(reply["content"] as? String == "Made it")
            #expect(t.sleeps.all == [.seconds(3)])
            #expect(emulator.requests.count == 2)
        }
    }

    @Test("529 until the retries run out fails the reply with a clear error", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func overloaded(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, settings: ["MODEL_MAX_RETRIES": "2"], emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            for _ in 0..<3 { emulator.enqueue(.error(status: 529, type: "overloaded_error", message: "Overloaded")) }
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "hi")
            let reply = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            #expect(reply["status"] as? String == "failed")
            #expect((reply["error"] as? String)?.contains("overloaded (HTTP 529)") == true)
            #expect(emulator.requests.count == 3)
            #expect(t.sleeps.all.count == 2)
            // the chat can go on
            let next = try await t.sendMessage("again", chat: chat.id, token: session.access)
            #expect(try await t.waitForReply(next.assistant.id, chat: chat.id, token: session.access)["status"] as? String == "complete")
        }
    }

    @Test("an error event mid-stream fails the reply, keeping the text that came", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func errorMidStream(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            t.emulator?.enqueue(.reply(Script.Reply(["Half", " an", " answer"], errorAfterChunks: "api_error")))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                let turn = try await t.sendMessage("hi", chat: chat.id, token: session.access)
                let events = try await stream.waitForDone(turn.assistant.id)
                stream.close()
                let done = try #require(events.last?.json)
                #expect(done["status"] as? String == "failed")
                #expect(done["content"] as? String == "Half an answer")
                #expect(events.replyText(turn.assistant.id) == "Half an answer")
            }
            let stored = try await t.chat(chat.id, token: session.access).messages[1]
            #expect(stored["status"] as? String == "failed")
            #expect(stored["content"] as? String == "Half an answer")
            #expect(stored["error"] as? String != nil)
        }
    }

    @Test("an upstream that never answers times out and fails the reply", arguments: UpstreamAPI.allCases)
    func upstreamHangs(_ api: UpstreamAPI) async throws {
        let settings = ["MODEL_FIRST_BYTE_TIMEOUT": "30s", "MODEL_MAX_RETRIES": "1"]
        try await withTestApp(.sqlite, settings: settings, emulated: true, api: api) { t in
            t.emulator?.enqueue(.hangBeforeHeaders, .hangBeforeHeaders)
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "hi")
            let reply = try await t.waitForReplyMovingProviderClock(chat.messages[1].id, chat: chat.id, token: session.access, by: .seconds(30))
            #expect(reply["status"] as? String == "failed")
            #expect((reply["error"] as? String)?.contains("did not answer in time") == true)
            #expect(t.emulator?.requests.count == 2)
        }
    }

    @Test("an upstream that goes silent mid-reply fails it after the idle timeout, keeping the text", arguments: UpstreamAPI.allCases)
    func upstreamStalls(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, settings: ["MODEL_IDLE_TIMEOUT": "60s"], emulated: true, api: api) { t in
            t.emulator?.enqueue(.reply(Script.Reply(["Then", " silence"], hangAfterChunks: true)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "hi")
            let reply = try await t.waitForReplyMovingProviderClock(chat.messages[1].id, chat: chat.id, token: session.access, by: .seconds(60)) {
                try await t.chat(chat.id, token: session.access).messages[1]["content"] as? String == "Then silence"
            }
            #expect(reply["status"] as? String == "failed")
            #expect(reply["content"] as? String == "Then silence")
            #expect(t.emulator?.requests.count == 1, "no retry after the first token")
        }
    }

    @Test("401 from upstream fails at once, saying the key was refused", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func upstreamUnauthorized(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            t.emulator?.enqueue(.error(status: 401, type: "authentication_error", message: "invalid x-api-key"))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "hi")
            let reply = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            #expect(reply["status"] as? String == "failed")
            #expect(reply["error"] as? String == "The model provider refused the API key (HTTP 401): invalid x-api-key")
            #expect(t.emulator?.requests.count == 1)
            #expect(t.sleeps.all.isEmpty)
        }
    }

    @Test("send refuses bad input and stores nothing", arguments: TestDatabase.all)
    func sendValidation(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            let path = "/api/chat/\(chat.id)/send/"
            for json in [["content": ""], ["content": "  \n "], ["content": 42], ["content": NSNull()], [:],
                         ["content": String(repeating: "a", count: 32_001)]] as [[String: Any]] {
                let response = try await t.send(.POST, path, json: json, token: session.access)
                #expect(response.status == .badRequest, "\(json)")
                #expect(try response.problem().errors?["content"] != nil)
            }
            let notJSON = try await t.send(.POST, path, body: "content=hi", contentType: "text/plain", token: session.access)
            #expect(notJSON.status == .unsupportedMediaType)
            let malformed = try await t.send(.POST, path, body: "{\"content\":", contentType: "application/json", token: session.access)
            #expect(malformed.status == .badRequest)
            let missing = try await t.send(.POST, "/api/chat/\(UUID().uuidString)/send/", json: ["content": "hi"], token: session.access)
            #expect(missing.status == .notFound)
            #expect(try await t.messageCount() == 0)
            #expect(t.emulator?.requests.isEmpty == true)
        }
    }

    @Test("a reader too slow for the stream is disconnected, told so in a last comment and counted, and resumes by id without loss", arguments: UpstreamAPI.allCases)
    func slowReader(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, settings: ["SSE_MAX_PENDING_EVENTS": "8"], emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            let chunk = String(repeating: "x", count: 8192)
            let chunks = (0..<1200).map { "\($0 % 10)" + chunk }
            emulator.enqueue(.reply(Script.Reply(chunks, pauseAfter: 0)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            let bus = try t.services.chat.bus
            try await t.withLiveServer { base in
                let path = "/api/chat/\(chat.id)/messages/"
                // opened but never read: the socket fills, then the server's queue for it
                let stalled = try await EventStreamClient.open(base, path, token: session.access, readBody: false)
                #expect(bus.openStreamCount == 1)
                let turn = try await t.sendMessage("flood", chat: chat.id, token: session.access)
                emulator.openGate()
                let reply = try await t.waitForReply(turn.assistant.id, chat: chat.id, token: session.access, timeout: .seconds(30))
                #expect(reply["status"] as? String == "complete", "the reply does not wait for the reader")
                try await waitUntil("the slow reader to be let go") { bus.openStreamCount == 0 }
                // Read at last, its stream says why it ended (a comment, which EventSource ignores).
                stalled.readFromNow()
                try await stalled.waitForEnd(timeout: .seconds(30))
                #expect(stalled.lastComment?.hasPrefix(": behind:") == true, "\(stalled.lastComment ?? "no comment")")
                stalled.close()
                let metrics = try await t.send(.GET, "/metrics", from: "127.0.0.1").body.string
                #expect(metrics.contains("chat_streams_behind_total 1"))

                let resumed = try await EventStreamClient.open(base, path, token: session.access, lastEventID: "2-\(chunks[0].utf8.count)")
                let events = try await resumed.waitForDone(turn.assistant.id)
                resumed.close()
                let rest: String = events.filter { $0.type == "delta" }.map { ($0.json["text"] as? String) ?? "" }.joined()
                #expect(chunks[0] + rest == chunks.joined())
            }
        }
    }
}

@Suite("Replies across restarts")
struct ReplyRecoveryTests {
    /// A streaming reply as a server that died would leave it.
    private func abandonedReply(_ t: TestApp, heartbeat: Date) async throws -> (chat: UUID, message: UUID) {
        let user = try await User.fixture(on: t.db)
        let chat = Chat(ownerID: try user.requireID(), title: "Left behind", model: "claude-sonnet-5-5", system: nil, now: Date())
        chat.nextSequence = 3
        try await chat.create(on: t.db)
        let chatID = try chat.requireID()
        try await Message(chatID: chatID, sequence: 1, role: .user, content: "hi", status: .complete, model: chat.model).create(on: t.db)
        let reply = Message(chatID: chatID, sequence: 2, role: .assistant, content: "Saved so f", status: .streaming,
                            model: chat.model, heartbeatAt: heartbeat)
        try await reply.create(on: t.db)
        return (chatID, try reply.requireID())
    }

    @Test("at start-up a reply left streaming by a crash is marked failed, its saved text kept", arguments: TestDatabase.all)
    func recoversCrashedReply(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let runner = try t.services.chat.runner
            let stale = try await abandonedReply(t, heartbeat: t.clock.now().addingTimeInterval(-3600))
            let live = try await abandonedReply(t, heartbeat: t.clock.now())

            await runner.recoverInterruptedReplies()

            let failed = try #require(try await Message.find(stale.message, on: t.db))
            #expect(failed.status == .failed)
            #expect(failed.content == "Saved so f")
            #expect(failed.error?.contains("interrupted") == true)
            let untouched = try #require(try await Message.find(live.message, on: t.db))
            #expect(untouched.status == .streaming, "another server may still be running it")

            t.clock.advance(by: 3600)
            await runner.recoverInterruptedReplies()
            #expect(try await Message.find(live.message, on: t.db)?.status == .failed)
        }
    }

    @Test("stop on a reply no server is running marks it cancelled")
    func stopOrphan() async throws {
        try await withTestApp(.sqlite, emulated: true) { t in
            let orphan = try await abandonedReply(t, heartbeat: t.clock.now())
            let runner = try t.services.chat.runner
            let stopped = try await runner.stop(chat: orphan.chat)
            #expect(stopped.status == .cancelled)
            #expect(stopped.content == "Saved so f")
        }
    }

    @Test("checkpoints save the text so far, and let go of a reply another server ended", arguments: UpstreamAPI.allCases)
    func checkpoints(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Saved", " part", " lost"], pauseAfter: 2)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "hi")
            let messageID = try #require(UUID(uuidString: chat.messages[1].id))
            try await waitUntil("the reply to pause") { emulator.pausedCount > 0 }
            let runner = try t.services.chat.runner

            // The emulator has sent both pieces; the server may still be reading the second.
            try await waitUntil("the text so far to be saved") {
                await runner.checkpoint()
                return try await Message.find(messageID, on: t.db)?.content == "Saved part"
            }

            // another instance cancels it in the database; the next checkpoint lets go
            try await Message.query(on: t.db).filter(\.$id == messageID).set(\.$status, to: .cancelled).update()
            await runner.checkpoint()
            try await waitUntil("the runner to let go") { runner.runningCount == 0 }
            let stored = try #require(try await Message.find(messageID, on: t.db))
            #expect(stored.status == .cancelled)
        }
    }

    @Test("on shutdown, replies get their drain time; those still running are stored failed with their text", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func drainOnShutdown(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Interrupted", " mid"], hangAfterChunks: true)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "long one")
            let messageID = try #require(UUID(uuidString: chat.messages[1].id))
            let runner = try t.services.chat.runner
            try await waitUntil("the text so far") {
                try await t.chat(chat.id, token: session.access).messages[1]["content"] as? String == "Interrupted mid"
            }

            let drained = Task { await runner.drain(timeout: .milliseconds(300)) }
            try await waitUntil("the runner to drain") { runner.isDraining }
            let refused = try await t.send(.POST, "/api/chat/", json: ["content": "too late"], token: session.access)
            #expect(refused.status == .serviceUnavailable)
            #expect(try await t.send(.GET, "/readyz").status == .serviceUnavailable)
            await drained.value

            let stored = try #require(try await Message.find(messageID, on: t.db))
            #expect(stored.status == .failed)
            #expect(stored.content == "Interrupted mid")
            #expect(stored.error == "The server shut down before the reply finished.")
        }
    }
}
