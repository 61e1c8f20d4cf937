@testable import App
import AnthropicEmulator
import Fluent
import Foundation
import NIOCore
import Testing
import VaporTesting

/// A real `chat-server` process stopped in the middle of its replies — by SIGTERM as a service
/// manager does, or by `kill -9` — and started again on the same database.
@Suite("Restarts mid-reply")
struct RestartTests {
    private static let finishing = ["Done", " in", " time", " at last"]
    private static let cut = ["Cut", " short"]

    @Test("SIGTERM while 50 replies stream: each finishes in the drain time or is stored failed with its text, every stream gets its done, the process exits in time, and a restart reads every message back",
          arguments: TestDatabase.all, UpstreamAPI.allCases)
    func sigterm(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withProcessDatabase(database, api: api) { t, emulator, environment in
            // Half the replies pause at the gate and finish once it opens; half hang, and outlive the drain time.
            for _ in 0..<25 {
                emulator.enqueue(.reply(Script.Reply(Self.finishing, delay: .milliseconds(20), pauseAfter: 2)),
                                 .reply(Script.Reply(Self.cut, hangAfterChunks: true)))
            }
            let drain = Duration.seconds(3)
            let serverEnvironment = environment.merging(["REPLY_DRAIN_TIMEOUT": "3s", "MAX_STREAMS_PER_USER": "100"]) { $1 }
            let server = try await ServerProcess.start(serverEnvironment)
            let session = try await t.register()
            var turns: [Turn] = []
            for _ in 0..<50 {
                let chat = try await t.createChat(token: session.access, title: "Restart")
                let stream = try await EventStreamClient.open(server.baseURL, "/api/chat/\(chat.id)/messages/", token: session.access)
                let reply = try await sendMessage(to: server, chat: chat.id, token: session.access)
                turns.append(Turn(chat: chat.id, reply: reply, stream: stream))
            }
            for turn in turns {
                try await turn.stream.waitFor("the first two pieces") {
                    [Self.finishing.prefix(2).joined(), Self.cut.joined()].contains($0.replyText(turn.reply))
                }
            }

            let sent = server.sigterm()
            emulator.openGate()
            // Half the replies hang for ever: only the drain time ends them. Past it the process stores
            // 25 failed replies and closes its connections, which on a loaded 2-core machine has taken
            // more than a second; 3 s bounds it without depending on the machine's speed.
            let took = try await server.waitForExit(since: sent, within: drain + .seconds(3))
            #expect(took <= drain + .seconds(3), "exited \(took) after SIGTERM")

            var ended: [String: [String: Any]] = [:]
            for turn in turns {
                let events = try await turn.stream.waitFor("the done of \(turn.reply)") {
                    $0.contains { $0.type == "done" && $0.json["id"] as? String == turn.reply }
                }
                let done = try #require(events.first { $0.type == "done" }?.json)
                switch done["status"] as? String {
                case "complete":
                    #expect(done["content"] as? String == Self.finishing.joined())
                case "failed":
                    #expect(done["content"] as? String == Self.cut.joined(), "the partial text is kept")
                    #expect(done["error"] as? String == "The server shut down before the reply finished.")
                default:
                    Issue.record("a reply ended \(done["status"] ?? "without a status")")
                }
                #expect(events.replyText(turn.reply) == done["content"] as? String, "the stream saw what was stored")
                try await turn.stream.waitForEnd()
                turn.stream.close()
                ended[turn.reply] = done
            }
            #expect(ended.values.filter { $0["status"] as? String == "complete" }.count == 25)
            #expect(ended.values.filter { $0["status"] as? String == "failed" }.count == 25)

            // Started again on the same database: every message reads back as its stream last saw it.
            let again = try await ServerProcess.start(serverEnvironment)
            for turn in turns {
                let chat = try await fetchChat(from: again, chat: turn.chat, token: session.access)
                let messages = try #require(chat["messages"] as? [[String: Any]])
                #expect(messages.count == 2)
                let stored = try #require(messages.last)
                let done = try #require(ended[turn.reply])
                #expect(stored["status"] as? String == done["status"] as? String)
                #expect(stored["content"] as? String == done["content"] as? String)
            }
            #expect(try await Message.query(on: t.db).filter(\.$status == .streaming).count() == 0, "nothing stays streaming")
            _ = try await again.terminate(within: .seconds(15))
        }
    }

    @Test("kill -9 mid-reply: started again, the server marks the interrupted replies failed within the lease, keeping the text they had saved",
          arguments: TestDatabase.all, UpstreamAPI.allCases)
    func killed(_ database: TestDatabase, _ api: UpstreamAPI) async throws {
        try await withProcessDatabase(database, api: api) { t, emulator, environment in
            let text = ["Saved", " before", " the", " kill"]
            for _ in 0..<5 { emulator.enqueue(.reply(Script.Reply(text, hangAfterChunks: true))) }
            let serverEnvironment = environment.merging(["REPLY_LEASE": "2s", "REPLY_CHECKPOINT_INTERVAL": "1s"]) { $1 }
            let server = try await ServerProcess.start(serverEnvironment)
            let session = try await t.register()
            var replies: [UUID] = []
            for _ in 0..<5 {
                let chat = try await t.createChat(token: session.access, title: "Killed")
                replies.append(try #require(UUID(uuidString: try await sendMessage(to: server, chat: chat.id, token: session.access))))
            }
            // A checkpoint has saved each reply's text so far.
            try await waitUntil("the text to be saved") {
                try await Message.query(on: t.db).filter(\.$id ~~ replies).all().allSatisfy { $0.content == text.joined() }
            }

            server.kill()
            #expect(try await Message.query(on: t.db).filter(\.$id ~~ replies).filter(\.$status == .streaming).count() == 5)

            let again = try await ServerProcess.start(serverEnvironment)
            try await waitUntil("the restarted server to mark the interrupted replies", timeout: .seconds(20)) {
                try await Message.query(on: t.db).filter(\.$id ~~ replies).filter(\.$status == .streaming).count() == 0
            }
            for message in try await Message.query(on: t.db).filter(\.$id ~~ replies).all() {
                #expect(message.status == .failed)
                #expect(message.content == text.joined())
                #expect(message.error?.contains("interrupted") == true)
            }
            _ = try await again.terminate(within: .seconds(15))
        }
    }
}

/// A chat, its reply, and a stream on it.
private struct Turn {
    var chat: String
    var reply: String
    var stream: EventStreamClient
}

/// Runs `body` with a test application and the environment of a server process on the same
/// database: for SQLite a file (an in-memory database does not outlive its process), for
/// PostgreSQL the test's schema; both on the test's Anthropic emulator.
private func withProcessDatabase(
    _ database: TestDatabase, api: UpstreamAPI,
    _ body: (TestApp, AnthropicEmulator, [String: String]) async throws -> Void
) async throws {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("restart-\(UUID().uuidString).sqlite3").path
    defer {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) }
    }
    let overrides: [String: String] = if case .sqlite = database { ["DATABASE_URL": "sqlite://\(file)"] } else { [:] }
    try await withTestApp(database, settings: overrides, emulated: true, api: api) { t in
        let emulator = try #require(t.emulator)
        var environment = TestSettings.environment(database).merging(overrides) { $1 }
        environment.merge(api.settings(for: emulator)) { $1 }
        if let schema = t.settings.database.searchPath?.first { environment["DATABASE_SCHEMA"] = schema }
        try await body(t, emulator, environment)
    }
}

/// Sends `go` to `chat` on the server process; the id of the reply it started.
private func sendMessage(to server: ServerProcess, chat: String, token: String) async throws -> String {
    let response = try await LiveHTTP.send(.POST, server.baseURL + "/api/chat/\(chat)/send/",
                                           headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                                           body: ByteBuffer(string: #"{"content":"go"}"#))
    try #require(response.status == .accepted, "send answered \(response.status): \(response.body)")
    let body = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any]
    return try #require(body?["assistant_message"] as? [String: Any]).id
}

private func fetchChat(from server: ServerProcess, chat: String, token: String) async throws -> [String: Any] {
    let response = try await LiveHTTP.send(.GET, server.baseURL + "/api/chat/\(chat)/", headers: ["Authorization": "Bearer \(token)"])
    try #require(response.status == .ok, "chat answered \(response.status): \(response.body)")
    return try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
}
