@testable import App
import AnthropicEmulator
import Foundation
import Testing
import VaporTesting

/// A failure the model provider can produce: what the emulator is told, and how the reply ends
/// when nobody stops it.
struct UpstreamFault: Sendable {
    var name: String
    var scripts: [Script]
    var settings: [String: String] = [:]
    /// The stored status and text of the reply run to its end.
    var status: String
    var text: String
    /// Nothing is answered at all: the base URL is a port nobody listens on.
    var refused = false
    /// The upstream goes silent: the provider's idle timeout has to fire.
    var silent = false

    /// More than `MODEL_MAX_RETRIES` (2) answers, so that retries run out.
    static func everyTime(_ script: Script) -> [Script] { Array(repeating: script, count: 4) }

    static let all: [UpstreamFault] = [
        UpstreamFault(name: "connection refused", scripts: [], status: "failed", text: "", refused: true),
        UpstreamFault(name: "401", scripts: [.error(status: 401, type: "authentication_error", message: "invalid x-api-key")],
                      status: "failed", text: ""),
        UpstreamFault(name: "400", scripts: [.error(status: 400, type: "invalid_request_error", message: "prompt is too long")],
                      status: "failed", text: ""),
        UpstreamFault(name: "429 with retry-after, then a reply",
                      scripts: [.error(status: 429, type: "rate_limit_error", message: "Slow down", headers: ["retry-after": "3"]),
                                .reply(["After", " waiting"])],
                      status: "complete", text: "After waiting"),
        UpstreamFault(name: "429 without retry-after, every time",
                      scripts: everyTime(.error(status: 429, type: "rate_limit_error", message: "Slow down")), status: "failed", text: ""),
        UpstreamFault(name: "500 every time", scripts: everyTime(.error(status: 500, type: "api_error", message: "Internal error")),
                      status: "failed", text: ""),
        UpstreamFault(name: "529 every time", scripts: everyTime(.error(status: 529, type: "overloaded_error", message: "Overloaded")),
                      status: "failed", text: ""),
        UpstreamFault(name: "an error event before any text",
                      scripts: everyTime(.reply(Script.Reply([], errorAfterChunks: "overloaded_error"))), status: "failed", text: ""),
        UpstreamFault(name: "an error event after text",
                      scripts: [.reply(Script.Reply(["Some", " text"], errorAfterChunks: "overloaded_error"))], status: "failed", text: "Some text"),
        UpstreamFault(name: "a stream cut before its end (no message_stop, no finish_reason)",
                      scripts: [.reply(Script.Reply(["Cut", " off"], endAbruptly: true))], status: "failed", text: "Cut off"),
        UpstreamFault(name: "silence past the idle timeout",
                      scripts: [.reply(Script.Reply(["Then", " silence"], hangAfterChunks: true))],
                      settings: ["MODEL_IDLE_TIMEOUT": "60s"], status: "failed", text: "Then silence", silent: true),
        UpstreamFault(name: "events coalesced in one read",
                      scripts: [.reply(Script.Reply(["All", " in", " one", " read"], coalesced: true))], status: "complete",
                      text: "All in one read"),
        UpstreamFault(name: "events coalesced in one read, ending in an error",
                      scripts: [.reply(Script.Reply(["Text", " then"], errorAfterChunks: "api_error", coalesced: true))],
                      status: "failed", text: "Text then"),
    ]
}

/// What the reply's client does meanwhile.
enum FaultClient: String, Sendable, CaseIterable {
    /// Keeps its stream open to the end.
    case connected
    /// Closes its stream as soon as the reply started.
    case disconnected
    /// Asks for the reply to stop as soon as it started.
    case stopped
}

struct FaultCell: Sendable, CustomTestStringConvertible {
    var fault: UpstreamFault
    var client: FaultClient
    var api: UpstreamAPI
    var testDescription: String { "\(fault.name), client \(client.rawValue), \(api.testDescription)" }

    static let all = UpstreamFault.all.flatMap { fault in
        FaultClient.allCases.flatMap { client in UpstreamAPI.allCases.map { FaultCell(fault: fault, client: client, api: $0) } }
    }
}

@Suite("Upstream faults, every one with every client")
struct UpstreamFaultTableTests {
    @Test("the stored message, the live events and a later replay agree", arguments: FaultCell.all, TestDatabase.all)
    func cell(_ cell: FaultCell, _ database: TestDatabase) async throws {
        let fault = cell.fault
        var settings = ["MODEL_MAX_RETRIES": "2"].merging(fault.settings) { $1 }
        let nobody = fault.refused ? try RefusingPort() : nil
        defer { withExtendedLifetime(nobody) {} }
        if let nobody {
            settings[cell.api == .anthropic ? "ANTHROPIC_BASE_URL" : "OPENAI_BASE_URL"] = nobody.url(cell.api == .anthropic ? "" : "/v1")
        }
        try await withTestApp(database, settings: settings, emulated: true, api: cell.api) { t in
            let emulator = try #require(t.emulator)
            for script in fault.scripts { emulator.enqueue(script) }
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Faults")
            try await t.withLiveServer { base in
                let path = "/api/chat/\(chat.id)/messages/"
                let stream = try await EventStreamClient.open(base, path, token: session.access)
                let turn = try await t.sendMessage("go", chat: chat.id, token: session.access)
                let id = turn.assistant.id

                // A stop may come before or after the failure: either way, what is stored and streamed agree.
                var stopped: [String: Any]?
                switch cell.client {
                case .connected: break
                case .disconnected: stream.close()
                case .stopped:
                    let response = try await t.send(.POST, "/api/chat/\(chat.id)/stop/", token: session.access)
                    #expect(response.status == .ok || response.status == .conflict, "stop answered \(response.status)")
                    if response.status == .ok { stopped = try response.jsonObject() }
                }
                // The clock moves only once the text sent before the silence has reached the server: moved
                // earlier, the first-byte timeout could fire and the reply be retried.
                let chatID = try #require(UUID(uuidString: chat.id))
                let replies = try t.services.chat.replies
                let stored = fault.silent && stopped == nil
                    ? try await t.waitForReplyMovingProviderClock(id, chat: chat.id, token: session.access, by: .seconds(60),
                                                                  when: { replies.liveReply(in: chatID)?.text == fault.text })
                    : try await t.waitForReply(id, chat: chat.id, token: session.access)

                if let stopped {
                    // Stopped, or ended on its own while the stop was on its way: stop answers it as stored.
                    for field in ["status", "content", "error"] {
                        #expect(stopped[field] as? String == stored[field] as? String, "stop's \(field) is the stored one")
                    }
                    if stored["status"] as? String != "cancelled" {
                        #expect(stored["status"] as? String == fault.status)
                        #expect(stored["content"] as? String == fault.text)
                    }
                } else {
                    #expect(stored["status"] as? String == fault.status)
                    #expect(stored["content"] as? String == fault.text)
                }
                if stored["status"] as? String == "failed" {
                    #expect((stored["error"] as? String)?.isEmpty == false, "a failed reply says why")
                }

                if cell.client != .disconnected {
                    let events = try await stream.waitForDone(id)
                    let done = try #require(events.last { $0.type == "done" }?.json)
                    for field in ["status", "content", "error"] {
                        #expect(done[field] as? String == stored[field] as? String, "done's \(field) is the stored one")
                    }
                    #expect(events.replyText(id) == stored["content"] as? String, "the deltas add up to the stored text")
                }
                stream.close()

                let later = try await EventStreamClient.open(base, path, token: session.access)
                let replay = try await later.waitFor("the replay of \(id)") {
                    $0.contains { $0.type == "message" && $0.json["id"] as? String == id }
                }
                later.close()
                let replayed = try #require(replay.first { $0.type == "message" && $0.json["id"] as? String == id }?.json)
                for field in ["status", "content", "error"] {
                    #expect(replayed[field] as? String == stored[field] as? String, "the replay's \(field) is the stored one")
                }
            }
        }
    }
}
