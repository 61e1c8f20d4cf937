import AnthropicEmulator
@testable import App
import Foundation
import Testing
import VaporTesting

@Suite("The message stream")
struct StreamTests {
    @Test("a reply streams token by token; the deltas join to exactly the stored text", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func replyOverSSE(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            let chunks = ["Hé", "llo", " \"wörld\"", "\n\n```swift\nlet x = 1\n```", " 👋🏽", "\\ done\t"]
            emulator.enqueue(.reply(Script.Reply(chunks, pauseAfter: 0)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)

            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                #expect(stream.status == .ok)
                #expect(stream.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true)
                #expect(stream.headers.first(name: "Cache-Control") == "no-cache")

                let turn = try await t.sendMessage("Say hello", chat: chat.id, token: session.access)
                try await stream.waitFor("the assistant's message event") { $0.contains { $0.type == "message" && $0.data.contains(turn.assistant.id) } }
                emulator.openGate()
                let events = try await stream.waitForDone(turn.assistant.id)
                stream.close()

                #expect(events.map(\.type) == ["message", "message"] + Array(repeating: "delta", count: chunks.count) + ["done"])
                #expect(events.allSatisfy { $0.id != nil })
                let ids = events.compactMap(\.id)
                let offsets = chunks.indices.map { "2-\(chunks[...$0].joined().utf8.count)" }
                #expect(ids == ["1", "2-0"] + offsets + ["2"])
                let deltas = events.filter { $0.type == "delta" }.map { $0.json["text"] as? String ?? "" }
                #expect(deltas == chunks)

                let done = try #require(events.last?.json)
                #expect(done["status"] as? String == "complete")
                #expect(done["content"] as? String == chunks.joined())
                #expect(done["output_tokens"] as? Int == chunks.count)
                #expect(done["input_tokens"] as? Int == 21)
                let stored = try await t.chat(chat.id, token: session.access).messages[1]
                #expect(stored["content"] as? String == deltas.joined())
                #expect(stored["status"] as? String == "complete")
            }
        }
    }

    @Test("the history and system prompt go upstream in order, failed and cancelled replies left out", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func historySentUpstream(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "First question", system: "You are terse.")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)

            emulator.enqueue(.error(status: 400, type: "invalid_request_error", message: "bad"))
            let failed = try await t.sendMessage("Second question", chat: chat.id, token: session.access)
            #expect(try await t.waitForReply(failed.assistant.id, chat: chat.id, token: session.access)["status"] as? String == "failed")

            emulator.enqueue(.reply(Script.Reply(["Half"], pauseAfter: 1)))
            let cancelled = try await t.sendMessage("Third question", chat: chat.id, token: session.access)
            try await waitUntil("the reply to pause") { emulator.pausedCount > 0 }
            let stopped = try await t.send(.POST, "/api/chat/\(chat.id)/stop/", token: session.access)
            #expect(stopped.status == .ok)
            #expect(try stopped.jsonObject()["id"] as? String == cancelled.assistant.id)
            emulator.closeGate()

            let last = try await t.sendMessage("Fourth question", chat: chat.id, token: session.access)
            try await t.waitForReply(last.assistant.id, chat: chat.id, token: session.access)

            let request = try #require(emulator.requests.last)
            #expect(request.system == "You are terse.")
            #expect(request.model == api.upstreamName(of: api.defaultModel))
            #expect(request.api == api.rawValue)
            #expect(request.messages.map(\.role) == ["user", "assistant", "user"])
            #expect(request.messages.map(\.content) == [
                "First question", "Echo: First question", "Second question\n\nThird question\n\nFourth question",
            ])
        }
    }

    @Test("two streams on one chat see the same events", arguments: UpstreamAPI.allCases)
    func twoSubscribers(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, emulated: true, api: api) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            try await t.withLiveServer { base in
                let first = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                let second = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                // Both are subscribed once their response has started.
                let turn = try await t.sendMessage("one two three four five", chat: chat.id, token: session.access)
                let a = try await first.waitForDone(turn.assistant.id)
                let b = try await second.waitForDone(turn.assistant.id)
                first.close()
                second.close()
                #expect(a.map(\.id) == b.map(\.id))
                #expect(a.map(\.data) == b.map(\.data))
                #expect(a.replyText(turn.assistant.id) == "Echo: one two three four five")
            }
        }
    }

    @Test("a reader that drops mid-reply resumes by Last-Event-ID with no gap and no repeat", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func resumeMidReply(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            let chunks = (1...8).map { " part\($0)" }
            emulator.enqueue(.reply(Script.Reply(chunks, pauseAfter: 3)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            try await t.withLiveServer { base in
                let path = "/api/chat/\(chat.id)/messages/"
                let first = try await EventStreamClient.open(base, path, token: session.access)
                let turn = try await t.sendMessage("go", chat: chat.id, token: session.access)
                let before = try await first.waitFor("three deltas") { $0.filter { $0.type == "delta" }.count == 3 }
                first.close()
                let lastID = try #require(before.last?.id)
                #expect(lastID == "2-\(chunks.prefix(3).joined().utf8.count)")

                // more arrives while nobody is connected
                emulator.openGate()
                try await waitUntil("more of the reply to arrive") {
                    (try await t.chat(chat.id, token: session.access).messages[1]["content"] as? String ?? "").contains("part5")
                }

                let second = try await EventStreamClient.open(base, path, token: session.access, lastEventID: lastID)
                let after = try await second.waitForDone(turn.assistant.id)
                second.close()

                #expect(!after.contains { $0.type == "message" }, "nothing from before the id is repeated")
                let resumedText = after.filter { $0.type == "delta" }.map { $0.json["text"] as? String ?? "" }.joined()
                let firstText = before.replyText(turn.assistant.id)
                #expect(firstText + resumedText == chunks.joined())
                #expect(after.last?.id == "2")

                // resuming after the end sends nothing more (the next event is the next message); the
                // query parameter works too
                let third = try await EventStreamClient.open(base, path + "?last_event_id=2", token: session.access)
                let next = try await t.sendMessage("after", chat: chat.id, token: session.access)
                let resumedAfterEnd = try await third.waitFor("the next message") { $0.contains { $0.json["id"] as? String == next.user.id } }
                third.close()
                // (The chat's generated title may come first: a `chat` event moves no position.)
                #expect(resumedAfterEnd.first { $0.type != "chat" }?.id == "3", "nothing before message 3")
            }
        }
    }

    @Test("a new reader joining mid-reply gets the text so far, then the rest", arguments: UpstreamAPI.allCases)
    func joinMidReply(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Alpha", " Beta", " Gamma"], pauseAfter: 2)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "start")
            let assistant = chat.messages[1].id
            try await waitUntil("the reply to pause") { emulator.pausedCount > 0 }
            // the chat shows the text so far too (once the server has read what the model sent)
            try await waitUntil("the chat to show the text so far") {
                try await t.chat(chat.id, token: session.access).messages[1]["content"] as? String == "Alpha Beta"
            }
            let midway = try await t.chat(chat.id, token: session.access).messages[1]
            #expect(midway["status"] as? String == "streaming")

            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                let replay = try await stream.waitFor("the replay") { $0.count == 2 }
                #expect(replay[1].json["content"] as? String == "Alpha Beta")
                #expect(replay[1].json["status"] as? String == "streaming")
                #expect(replay[1].id == "2-10")
                emulator.openGate()
                let events = try await stream.waitForDone(assistant)
                stream.close()
                #expect(events.replyText(assistant) == "Alpha Beta Gamma")
            }
        }
    }

    @Test("a reply goes on and is stored with no client connected", arguments: UpstreamAPI.allCases)
    func noClient(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, emulated: true, api: api) { t in
            t.emulator?.enqueue(.reply(["Nobody", " is", " watching"], delay: .milliseconds(20)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "hello?")
            let reply = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            #expect(reply["content"] as? String == "Nobody is watching")
            #expect(reply["status"] as? String == "complete")
        }
    }

    @Test("a second send while a reply streams is 409, and stores nothing", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func secondSendConflicts(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["wait"], pauseAfter: 0)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "first")

            let second = try await t.send(.POST, "/api/chat/\(chat.id)/send/", json: ["content": "second"], token: session.access)

            #expect(second.status == .conflict)
            #expect(try second.problem().title == "Reply in progress")
            #expect(try await t.messageCount() == 2)
            emulator.openGate()
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            let third = try await t.sendMessage("third", chat: chat.id, token: session.access)
            #expect(third.user["sequence"] as? Int == 3)
            #expect(third.assistant["sequence"] as? Int == 4)
        }
    }

    @Test("stop cancels the reply, keeping its partial text; stopping again is 409", arguments: TestDatabase.all, UpstreamAPI.allCases)
    func stop(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withTestApp(database, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Partial", " text", " never", " sent"], pauseAfter: 2)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                let turn = try await t.sendMessage("go", chat: chat.id, token: session.access)
                try await waitUntil("the reply to pause") { emulator.pausedCount > 0 }
                try await stream.waitFor("two deltas") { $0.filter { $0.type == "delta" }.count == 2 }

                let response = try await t.send(.POST, "/api/chat/\(chat.id)/stop/", token: session.access)

                #expect(response.status == .ok)
                let stopped = try response.jsonObject()
                #expect(stopped["status"] as? String == "cancelled")
                #expect(stopped["content"] as? String == "Partial text")
                let events = try await stream.waitForDone(turn.assistant.id)
                stream.close()
                #expect(events.last?.json["status"] as? String == "cancelled")
                let stored = try await t.chat(chat.id, token: session.access).messages[1]
                #expect(stored["status"] as? String == "cancelled")
                #expect(stored["content"] as? String == "Partial text")
                let again = try await t.send(.POST, "/api/chat/\(chat.id)/stop/", token: session.access)
                #expect(again.status == .conflict)
            }
        }
    }

    @Test("deleting the chat ends its streams with an error event", arguments: UpstreamAPI.allCases)
    func deleteEndsStream(_ api: UpstreamAPI) async throws {
        try await withTestApp(.sqlite, emulated: true, api: api) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["never", " finished"], pauseAfter: 1)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "hi")
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                try await stream.waitFor("the replay") { $0.count >= 2 }

                #expect(try await t.send(.DELETE, "/api/chat/\(chat.id)/", token: session.access).status == .noContent)

                let events = try await stream.waitFor("the error event") { $0.contains { $0.type == "error" } }
                try await stream.waitForEnd()
                let error = try #require(events.last)
                #expect(error.type == "error")
                #expect(error.id != nil)
                #expect(error.json["status"] as? Int == 410)
            }
            #expect(try await t.messageCount() == 0)
        }
    }

    @Test("an expired access token ends the stream with an error event")
    func tokenExpiryEndsStream() async throws {
        try await withTestApp(.sqlite, settings: ["SSE_KEEPALIVE_INTERVAL": "0.05"], emulated: true) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                // Ticks come (keep-alives prove it) and the stream goes on while the token is valid.
                try await waitUntil("keep-alives") { stream.keepAliveCount >= 2 }
                #expect(!stream.hasEnded)

                t.clock.advance(by: 901)

                let events = try await stream.waitFor("the error event") { $0.contains { $0.type == "error" } }
                try await stream.waitForEnd()
                #expect(events.last?.json["status"] as? Int == 401)
            }
        }
    }

    @Test("an idle stream gets keep-alive comments, and a closed one is let go")
    func keepAlive() async throws {
        try await withTestApp(.sqlite, settings: ["SSE_KEEPALIVE_INTERVAL": "0.05"], emulated: true) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            let bus = try t.services.chat.bus
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                try await waitUntil("three keep-alives") { stream.keepAliveCount >= 3 }
                #expect(bus.openStreamCount == 1)
                stream.close()
                try await waitUntil("the closed stream to be let go") { bus.openStreamCount == 0 }
            }
        }
    }

    @Test("the stream takes its token from the Authorization header only, and refuses a bad Last-Event-ID")
    func headerTokenAndBadID() async throws {
        try await withTestApp(.sqlite, emulated: true) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access)
            try await t.withLiveServer { base in
                let query = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/?access_token=\(session.access)",
                                                             token: nil, readBody: false)
                #expect(query.status == .unauthorized, "a token in the URL ends up in logs and history: refused")
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                #expect(stream.status == .ok)
                stream.close()
                let bad = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access,
                                                           lastEventID: "yesterday", readBody: false)
                #expect(bad.status == .badRequest)
                // The header wins over the query parameter, but a bad one is refused all the same.
                let both = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/?last_event_id=%C2%84", token: session.access,
                                                            lastEventID: "0", readBody: false)
                #expect(both.status == .badRequest)
            }
        }
    }
}
