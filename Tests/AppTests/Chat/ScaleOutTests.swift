import AnthropicEmulator
@testable import App
import Fluent
import Providers
import Foundation
import Testing
import VaporTesting

/// Two instances of the server on one PostgreSQL schema (the first migrates it), sharing one
/// emulator: the scale-out a load balancer makes, in one process. `listenThrough` puts a proxy
/// between the second instance's event bus and the database, to cut it on demand.
func withTwoInstances(
    settings: [String: String] = [:], emulated: Bool = true, api: UpstreamAPI = .anthropic, listenThroughProxy: Bool = false,
    _ body: (TestApp, TestApp, TCPProxy?) async throws -> Void
) async throws {
    guard let url = TestDatabase.postgresURL, let components = URLComponents(string: url) else { return }
    let emulator = emulated ? try await AnthropicEmulator.start() : nil
    let schema = newTestSchema()
    var proxy: TCPProxy?
    var a: TestApp?
    var b: TestApp?
    do {
        a = try await startInstance(.postgres(url: url), settings, emulator: emulator, api: api, schema: schema, migrate: true)
        var second = settings
        if listenThroughProxy {
            let started = try await TCPProxy.start(to: components.host ?? "127.0.0.1", port: components.port ?? 5432)
            proxy = started
            var direct = components
            direct.port = started.port
            second["DATABASE_LISTEN_URL"] = direct.string
        }
        b = try await startInstance(.postgres(url: url), second, emulator: emulator, api: api, schema: schema, migrate: false)
        try await body(try #require(a), try #require(b), proxy)
    } catch {
        await tearDownInstances(a, b, proxy, schema: schema, emulator: emulator)
        throw error
    }
    await tearDownInstances(a, b, proxy, schema: schema, emulator: emulator)
}

private func tearDownInstances(_ a: TestApp?, _ b: TestApp?, _ proxy: TCPProxy?, schema: String, emulator: AnthropicEmulator?) async {
    emulator?.openGate()
    await tearDown(b?.app, schema: nil, emulator: nil)
    await tearDown(a?.app, schema: schema, emulator: emulator)
    await proxy?.shutdown()
}

extension TestApp {
    /// This instance's transport to the others.
    var transport: PostgresTransport? {
        get throws { (try services.chat.bus as? ChatBus)?.transport as? PostgresTransport }
    }
}

@Suite("Two instances on one PostgreSQL database", .serialized, .enabled(if: TestDatabase.postgresURL != nil))
struct ScaleOutTests {
    @Test("a reply running on one instance streams live on the other, piece by piece, with event ids that mean the same on both", arguments: UpstreamAPI.allCases)
    func liveAcrossInstances(_ api: UpstreamAPI) async throws {
        try await withTwoInstances(api: api) { a, b, _ in
            let emulator = try #require(a.emulator)
            let chunks = ["One", " two", " three", " four", " five"]
            emulator.enqueue(.reply(Script.Reply(chunks, pauseAfter: 2)))
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access)
            try await b.withLiveServer { baseB in
                let stream = try await EventStreamClient.open(baseB, "/api/chat/\(chat.id)/messages/", token: session.access)
                let turn = try await a.sendMessage("go", chat: chat.id, token: session.access)
                // Live: the first two pieces reach the other instance while the reply waits.
                try await stream.waitFor("two pieces while the reply is paused") { $0.replyText(turn.assistant.id) == "One two" }
                #expect(emulator.pausedCount == 1)
                emulator.openGate()
                let events = try await stream.waitForDone(turn.assistant.id)
                stream.close()
                #expect(events.replyText(turn.assistant.id) == chunks.joined())
                // Positions are byte offsets: each id is one a stream on the running instance gets
                // (pieces that queued up while the database was busy travel joined), in order.
                let offsets = chunks.indices.map { "2-\(chunks[...$0].joined().utf8.count)" }
                let ids = events.compactMap(\.id)
                #expect(Array(ids.prefix(2)) == ["1", "2-0"] && ids.last == "2", "\(ids)")
                #expect(ids.dropFirst(2).dropLast().allSatisfy(offsets.contains), "\(ids)")
                #expect(ids.dropFirst(2).dropLast() == ids.dropFirst(2).dropLast().sorted { StreamPosition(eventID: $0)! < StreamPosition(eventID: $1)! })
                #expect(events.last?.json["status"] as? String == "complete")
            }
        }
    }

    @Test("Last-Event-ID handed out by one instance resumes on the other mid-reply, nothing missing and nothing twice", arguments: UpstreamAPI.allCases)
    func resumeAcrossInstances(_ api: UpstreamAPI) async throws {
        try await withTwoInstances(api: api) { a, b, _ in
            let emulator = try #require(a.emulator)
            let chunks = (1...8).map { " part\($0)" }
            emulator.enqueue(.reply(Script.Reply(chunks, pauseAfter: 3)))
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access)
            let path = "/api/chat/\(chat.id)/messages/"
            let (before, turn) = try await a.withLiveServer { baseA in
                let first = try await EventStreamClient.open(baseA, path, token: session.access)
                let turn = try await a.sendMessage("go", chat: chat.id, token: session.access)
                let before = try await first.waitFor("three pieces") { $0.replyText(turn.assistant.id) == chunks.prefix(3).joined() }
                first.close()
                return (before, turn)
            }
            let lastID = try #require(before.last?.id)
            try await b.withLiveServer { baseB in
                let second = try await EventStreamClient.open(baseB, path, token: session.access, lastEventID: lastID)
                emulator.openGate()
                let after = try await second.waitForDone(turn.assistant.id)
                second.close()
                #expect(!after.contains { $0.type == "message" }, "nothing from before the id is repeated")
                var resumed = ""
                for event in after where event.type == "delta" { resumed += (event.json["text"] as? String) ?? "" }
                #expect(before.replyText(turn.assistant.id) + resumed == chunks.joined())
                #expect(after.last?.id == "2")
            }
        }
    }

    @Test("stop asked of one instance stops the reply where it runs, closing its upstream request", arguments: UpstreamAPI.allCases)
    func stopAcrossInstances(_ api: UpstreamAPI) async throws {
        try await withTwoInstances(api: api) { a, b, _ in
            let emulator = try #require(a.emulator)
            emulator.enqueue(.reply(Script.Reply(["Partial", " text", " never", " sent"], pauseAfter: 2)))
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access, content: "go")
            try await waitUntil("the reply to pause on the first instance") { emulator.pausedCount == 1 }
            let runnerA = try a.services.chat.runner
            #expect(runnerA.runningCount == 1)

            let started = ContinuousClock.now
            let stopped = try await b.send(.POST, "/api/chat/\(chat.id)/stop/", token: session.access)
            let took = started.duration(to: .now)

            #expect(stopped.status == .ok)
            let message = try stopped.jsonObject()
            #expect(message["status"] as? String == "cancelled")
            #expect(message["content"] as? String == "Partial text")
            #expect(runnerA.runningCount == 0, "the running instance let it go: its upstream request is closed")
            #expect(took < .seconds(2), "stopped in \(took)")
            #expect(try await b.send(.POST, "/api/chat/\(chat.id)/stop/", token: session.access).status == .conflict)
        }
    }

    @Test("a limit is the limit however many instances count it")
    func sharedRateLimit() async throws {
        try await withTwoInstances(settings: ["RATE_LIMIT_LOGIN_ACCOUNT": "10/minute"], emulated: false) { a, b, _ in
            let session = try await a.register()
            var statuses: [HTTPResponseStatus] = []
            for attempt in 0..<12 {
                let instance = attempt % 2 == 0 ? a : b
                let response = try await instance.send(.POST, "/auth/login/", from: "203.0.113.9",
                                                       json: ["email": session.user.email, "password": "wrong guess \(attempt)"])
                statuses.append(response.status)
            }
            #expect(statuses.prefix(10).allSatisfy { $0 == .unauthorized }, "\(statuses)")
            #expect(statuses.suffix(2).allSatisfy { $0 == .tooManyRequests }, "12 failures over two instances meet a limit of 10")
        }
    }

    @Test("a 100 KB delta and backslashes cross instances intact; a NUL a model sends is stored and streamed as U+FFFD", arguments: UpstreamAPI.allCases)
    func largeDelta(_ api: UpstreamAPI) async throws {
        try await withTwoInstances(api: api) { a, b, _ in
            let emulator = try #require(a.emulator)
            let huge = String((0..<100_000).map { ["a", "é", "\\", "😀", "\u{0}", "|", "\n"][$0 % 7] as Character })
            emulator.enqueue(.reply(Script.Reply(["start ", huge, " end"], pauseAfter: 0)))
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access)
            try await b.withLiveServer { baseB in
                let stream = try await EventStreamClient.open(baseB, "/api/chat/\(chat.id)/messages/", token: session.access)
                let turn = try await a.sendMessage("big", chat: chat.id, token: session.access)
                try await stream.waitFor("the assistant message") { $0.contains { $0.json["id"] as? String == turn.assistant.id } }
                emulator.openGate()
                let events = try await stream.waitForDone(turn.assistant.id)
                stream.close()
                let expected = "start " + huge.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") + " end"
                #expect(events.replyText(turn.assistant.id) == expected)
                #expect(try await a.chat(chat.id, token: session.access).messages[1]["content"] as? String == expected)
                // (A NOTIFY payload holds under 8,000 bytes: arriving whole, the piece crossed in several
                // notifications. How many delta events the reader sees depends on how fast it reads: a
                // busy reader gets them merged, so the count is not a measure of the crossing.)
            }
        }
    }

    @Test("a stream on an instance whose listener is down catches up from the stored text when it is back, saying nothing twice", arguments: UpstreamAPI.allCases)
    func listenerDown(_ api: UpstreamAPI) async throws {
        try await withTwoInstances(api: api, listenThroughProxy: true) { a, b, proxy in
            let proxy = try #require(proxy)
            let emulator = try #require(a.emulator)
            let chunks = (1...6).map { " piece\($0)" }
            emulator.enqueue(.reply(Script.Reply(chunks, pauseAfter: 2)))
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access)
            let busB = try #require(try b.transport)
            try await b.withLiveServer { baseB in
                let path = "/api/chat/\(chat.id)/messages/"
                let early = try await EventStreamClient.open(baseB, path, token: session.access)
                let turn = try await a.sendMessage("go", chat: chat.id, token: session.access)
                try await early.waitFor("two pieces") { $0.replyText(turn.assistant.id) == chunks.prefix(2).joined() }

                // The second instance loses its listener, and cannot get it back for now.
                await proxy.drop(refuse: true)
                try await waitUntil("the listener to be down") { !busB.isListening }
                // A stream opens meanwhile, and the reply goes on and ends unheard.
                let late = try await EventStreamClient.open(baseB, path, token: session.access)
                emulator.openGate()
                try await a.waitForReply(turn.assistant.id, chat: chat.id, token: session.access)

                proxy.restore()
                try await waitUntil("the listener to be back") { busB.isListening }
                let earlyEvents = try await early.waitForDone(turn.assistant.id)
                let lateEvents = try await late.waitForDone(turn.assistant.id)
                early.close()
                late.close()
                for events in [earlyEvents, lateEvents] {
                    #expect(events.replyText(turn.assistant.id) == chunks.joined())
                    let ids = events.compactMap(\.id)
                    #expect(ids == ids.sorted { StreamPosition(eventID: $0)! < StreamPosition(eventID: $1)! }, "in order")
                    // A `chat` event (the chat got its title) is sent at the reader's position, unchanged;
                    // every other event moves the position on.
                    let moving = events.filter { $0.type != "chat" }.compactMap(\.id)
                    #expect(Set(moving).count == moving.count, "nothing twice: \(ids)")
                }
            }
        }
    }

    @Test("a reply's text goes through the database only while another instance has streams on its chat", arguments: UpstreamAPI.allCases)
    func textOnlyWhereFollowed(_ api: UpstreamAPI) async throws {
        try await withTwoInstances(api: api) { a, b, _ in
            let emulator = try #require(a.emulator)
            let busA = try #require(try a.transport)
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access)
            try await a.withLiveServer { baseA in
                // The stream is on the instance that runs the reply: nothing for the database to carry.
                let local = try await EventStreamClient.open(baseA, "/api/chat/\(chat.id)/messages/", token: session.access)
                emulator.enqueue(.reply(["One", " two", " three"]))
                let first = try await a.sendMessage("first", chat: chat.id, token: session.access)
                _ = try await local.waitForDone(first.assistant.id)
                #expect(busA.deltaNotificationsSent == 0)

                // Another instance opens a stream on the chat: from then on the text goes to it, live.
                try await b.withLiveServer { baseB in
                    let remote = try await EventStreamClient.open(baseB, "/api/chat/\(chat.id)/messages/", token: session.access)
                    try await waitUntil("A to hear that B follows the chat") { busA.isFollowedElsewhere(try #require(UUID(uuidString: chat.id))) }
                    emulator.enqueue(.reply(Script.Reply(["Four", " five", " six"], pauseAfter: 2)))
                    let second = try await a.sendMessage("second", chat: chat.id, token: session.access)
                    try await remote.waitFor("two pieces on B while the reply waits") { $0.replyText(second.assistant.id) == "Four five" }
                    emulator.openGate()
                    let events = try await remote.waitForDone(second.assistant.id)
                    remote.close()
                    #expect(events.replyText(second.assistant.id) == "Four five six")
                    #expect((1...3).contains(busA.deltaNotificationsSent), "the three pieces, joined or not")
                }
                local.close()
            }
        }
    }

    @Test("an account deactivated on one instance is refused at once on the other, even while its listener was down")
    func accountChangesCrossInstances() async throws {
        try await withTwoInstances(listenThroughProxy: true) { a, b, proxy in
            let proxy = try #require(proxy)
            let admin = try await User.fixture(email: uniqueEmail("admin"), isStaff: true, isSuperuser: true, on: a.db)
            func deactivate(_ session: SessionBody) async throws {
                let user = try #require(try await User.find(UUID(uuidString: session.user.id), on: a.db))
                _ = try await a.services.accounts.update(
                    user, with: .init(name: "", role: .basic, isStaff: false, isActive: false, isSuperuser: false), by: admin, on: a.db)
            }
            let first = try await a.register()
            #expect(try await b.send(.GET, "/auth/me/", token: first.access).status == .ok, "kept on B")
            try await deactivate(first)
            try await waitUntil("B to refuse the deactivated account") {
                try await b.send(.GET, "/auth/me/", token: first.access).status == .unauthorized
            }

            // B cannot hear A while the change is made: once its listener is back, it reads every account again.
            let second = try await a.register()
            #expect(try await b.send(.GET, "/auth/me/", token: second.access).status == .ok)
            let busB = try #require(try b.transport)
            await proxy.drop(refuse: true)
            try await waitUntil("the listener to be down") { !busB.isListening }
            try await deactivate(second)
            proxy.restore()
            try await waitUntil("the listener to be back") { busB.isListening }
            try await waitUntil("B to refuse the account changed while it was not listening") {
                try await b.send(.GET, "/auth/me/", token: second.access).status == .unauthorized
            }
        }
    }

    @Test("a reply whose instance is killed (kill -9) is failed by a live instance within the lease, and its streams get done", arguments: UpstreamAPI.allCases)
    func killedInstance(_ api: UpstreamAPI) async throws {
        let timings = ["REPLY_LEASE": "3s", "REPLY_CHECKPOINT_INTERVAL": "1s"]
        try await withTwoInstances(settings: timings, api: api) { a, b, _ in
            let emulator = try #require(a.emulator)
            let url = try #require(TestDatabase.postgresURL)
            let schema = try #require(a.settings.database.searchPath?.first)
            // A third instance, a real process on the same database, runs the reply and is killed.
            var environment = TestSettings.environment(.postgres(url: url)).merging(timings) { $1 }
            environment.merge(api.settings(for: emulator)) { $1 }
            environment.merge(["DATABASE_SCHEMA": schema, "AUTO_MIGRATE": "false"]) { $1 }
            let process = try await ServerProcess.start(environment)
            emulator.enqueue(.reply(Script.Reply(["Said", " before", " dying"], pauseAfter: 2)))
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access)
            try await b.withLiveServer { baseB in
                let stream = try await EventStreamClient.open(baseB, "/api/chat/\(chat.id)/messages/", token: session.access)
                let sent = try await LiveHTTP.send(.POST, process.baseURL + "/api/chat/\(chat.id)/send/",
                                                  headers: ["Host": "localhost", "Authorization": "Bearer \(session.access)",
                                                            "Content-Type": "application/json"],
                                                  body: ByteBuffer(string: #"{"content":"go"}"#))
                #expect(sent.status == .accepted)
                let body = try JSONSerialization.jsonObject(with: Data(sent.body.utf8)) as? [String: Any]
                let assistant = try #require(body?["assistant_message"] as? [String: Any]).id
                try await stream.waitFor("two pieces from the process") { $0.replyText(assistant) == "Said before" }

                process.kill()
                // Past the lease after the process's last heartbeat (stamped by its own, real clock),
                // by the live instance's clock: its next upkeep marks the reply failed.
                b.clock.set(Date().addingTimeInterval(4))
                let events = try await stream.waitFor("the done of the killed instance's reply", timeout: .seconds(15)) {
                    $0.contains { $0.type == "done" }
                }
                stream.close()
                let done = try #require(events.last?.json)
                #expect(done["status"] as? String == "failed")
                #expect((done["error"] as? String)?.contains("interrupted") == true)
            }
        }
    }
}
