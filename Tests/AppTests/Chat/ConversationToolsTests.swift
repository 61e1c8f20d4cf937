@testable import App
import AnthropicEmulator
import Fluent
import Foundation
import Testing
import VaporTesting

/// Regenerate, edit, and the versions they leave behind.
@Suite("Conversation versions")
struct ConversationVersionsTests {
    /// A chat with one finished exchange: (chat id, user message, reply).
    private func exchange(_ t: TestApp, token: String, question: String = "First question") async throws
        -> (chat: String, user: [String: Any], reply: [String: Any]) {
        let chat = try await t.createChat(token: token, title: "Versions")
        let turn = try await t.sendMessage(question, chat: chat.id, token: token)
        let reply = try await t.waitForReply(turn.assistant.id, chat: chat.id, token: token)
        return (chat.id, turn.user, reply)
    }

    @Test("regenerate replaces the last reply with a new one; the old one stays as version 1 of 2", arguments: TestDatabase.all)
    func regenerate(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let (chat, user, first) = try await exchange(t, token: session.access)
            emulator.enqueue(.reply(["A", " second", " answer"]))
            let response = try await t.send(.POST, "/api/chat/\(chat)/regenerate/", token: session.access)
            #expect(response.status == .accepted)
            let reply = try #require(try response.jsonObject()["assistant_message"] as? [String: Any])
            #expect(reply["status"] as? String == "streaming")
            #expect(reply["parent_id"] as? String == user.id)
            #expect(reply["version"] as? Int == 2 && reply["versions"] as? Int == 2)
            let done = try await t.waitForReply(reply.id, chat: chat, token: session.access)
            #expect(done["content"] as? String == "A second answer")

            let shown = try await t.chat(chat, token: session.access).messages
            #expect(shown.map(\.id) == [user.id, reply.id], "the chat shows the current conversation only")
            #expect(shown.allSatisfy { $0["current"] as? Bool == true })

            let versions = try await t.send(.GET, "/api/chat/\(chat)/messages/\(first.id)/versions/", token: session.access).jsonObject()
            let listed = try #require(versions["results"] as? [[String: Any]])
            #expect(listed.map(\.id) == [first.id, reply.id])
            #expect(listed.map { $0["current"] as? Bool } == [false, true])
            #expect(listed.map { $0["version"] as? Int } == [1, 2])

            // The model sees the conversation as it is now: the question, not the replaced reply.
            emulator.enqueue(.reply(["Fine"]))
            let next = try await t.sendMessage("And then?", chat: chat, token: session.access)
            try await t.waitForReply(next.assistant.id, chat: chat, token: session.access)
            #expect(emulator.requests.last?.messages.map(\.content) == ["First question", "A second answer", "And then?"])
        }
    }

    @Test("regenerate refuses what it cannot do, changing nothing", arguments: TestDatabase.all)
    func regenerateRefusals(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let empty = try await t.createChat(token: session.access, title: "Empty")
            let nothing = try await t.send(.POST, "/api/chat/\(empty.id)/regenerate/", token: session.access)
            #expect(nothing.status == .badRequest)
            _ = try nothing.problem()

            let (chat, _, _) = try await exchange(t, token: session.access)
            let before = try await t.messageCount()
            let badModel = try await t.send(.POST, "/api/chat/\(chat)/regenerate/", json: ["model": "no-such-model"], token: session.access)
            #expect(badModel.status == .badRequest)
            #expect(try badModel.problem().errors?["model"] != nil)
            let wrongType = try await t.send(.POST, "/api/chat/\(chat)/regenerate/", json: ["model": 7], token: session.access)
            #expect(wrongType.status == .badRequest)

            let stranger = try await t.register()
            #expect(try await t.send(.POST, "/api/chat/\(chat)/regenerate/", token: stranger.access).status == .notFound)
            #expect(try await t.messageCount() == before, "nothing stored")

            emulator.enqueue(.reply(Script.Reply(["Slow"], pauseAfter: 1)))
            let streaming = try await t.send(.POST, "/api/chat/\(chat)/regenerate/", token: session.access)
            #expect(streaming.status == .accepted)
            let again = try await t.send(.POST, "/api/chat/\(chat)/regenerate/", token: session.access)
            #expect(again.status == .conflict)
            emulator.openGate()
            try await t.waitForReply(try streaming.jsonObject()["assistant_message"].map { ($0 as? [String: Any])?.id ?? "" } ?? "",
                                     chat: chat, token: session.access)
        }
    }

    @Test("edit gives a question new text: what followed leaves the conversation, a new reply starts, and switching back restores it",
          arguments: TestDatabase.all)
    func editAndSwitch(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            let (chat, q1, a1) = try await exchange(t, token: session.access, question: "One")
            let turn2 = try await t.sendMessage("Two", chat: chat, token: session.access)
            let a2 = try await t.waitForReply(turn2.assistant.id, chat: chat, token: session.access)

            let edited = try await t.send(.POST, "/api/chat/\(chat)/edit/", json: ["message_id": q1.id, "content": "Uno"], token: session.access)
            #expect(edited.status == .accepted)
            let body = try edited.jsonObject()
            let newQuestion = try #require(body["user_message"] as? [String: Any])
            let newReply = try #require(body["assistant_message"] as? [String: Any])
            #expect(newQuestion["content"] as? String == "Uno")
            #expect(newQuestion["parent_id"] is NSNull, "the first question follows nothing")
            #expect(newQuestion["version"] as? Int == 2 && newQuestion["versions"] as? Int == 2)
            #expect(newReply["parent_id"] as? String == newQuestion.id)
            try await t.waitForReply(newReply.id, chat: chat, token: session.access)
            #expect(try await t.chat(chat, token: session.access).messages.map(\.id) == [newQuestion.id, newReply.id])

            // Back to the first version: the conversation that followed it comes back whole.
            let switched = try await t.send(.POST, "/api/chat/\(chat)/messages/\(q1.id)/select/", token: session.access)
            #expect(switched.status == .ok)
            #expect(try switched.jsonObject().messages.map(\.id) == [q1.id, a1.id, turn2.user.id, a2.id])
            #expect(try await t.chat(chat, token: session.access).messages.map(\.id) == [q1.id, a1.id, turn2.user.id, a2.id])
            let versions = try await t.send(.GET, "/api/chat/\(chat)/messages/\(newQuestion.id)/versions/", token: session.access)
                .jsonObject()["results"] as? [[String: Any]]
            #expect(versions?.map { $0["current"] as? Bool } == [true, false])

            // And forward again.
            let forward = try await t.send(.POST, "/api/chat/\(chat)/messages/\(newQuestion.id)/select/", token: session.access)
            #expect(try forward.jsonObject().messages.map(\.id) == [newQuestion.id, newReply.id])
        }
    }

    @Test("edit and select refuse what they cannot do, changing nothing", arguments: TestDatabase.all)
    func editRefusals(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let (chat, question, reply) = try await exchange(t, token: session.access)
            let before = try await t.messageCount()
            let cases: [([String: Any], HTTPStatus)] = [
                (["message_id": reply.id, "content": "x"], .badRequest),
                (["message_id": UUID().uuidString, "content": "x"], .badRequest),
                (["message_id": "not-a-uuid", "content": "x"], .badRequest),
                (["content": "x"], .badRequest),
                (["message_id": question.id], .badRequest),
                (["message_id": question.id, "content": "   "], .badRequest),
                (["message_id": question.id, "content": "a\u{0}b"], .badRequest),
            ]
            for (body, status) in cases {
                let response = try await t.send(.POST, "/api/chat/\(chat)/edit/", json: body, token: session.access)
                #expect(response.status == status, "\(body)")
                _ = try response.problem()
            }
            let stranger = try await t.register()
            let foreign = try await t.send(.POST, "/api/chat/\(chat)/edit/", json: ["message_id": question.id, "content": "x"],
                                           token: stranger.access)
            #expect(foreign.status == .notFound)
            #expect(try await t.send(.POST, "/api/chat/\(chat)/messages/\(question.id)/select/", token: stranger.access).status == .notFound)
            #expect(try await t.send(.GET, "/api/chat/\(chat)/messages/\(question.id)/versions/", token: stranger.access).status == .notFound)
            #expect(try await t.send(.POST, "/api/chat/\(chat)/messages/\(UUID())/select/", token: session.access).status == .notFound)
            #expect(try await t.send(.GET, "/api/chat/\(chat)/messages/nope/versions/", token: session.access).status == .badRequest)
            #expect(try await t.messageCount() == before, "nothing stored")

            emulator.enqueue(.reply(Script.Reply(["Slow"], pauseAfter: 1)))
            let turn = try await t.sendMessage("Again", chat: chat, token: session.access)
            let busy = try await t.send(.POST, "/api/chat/\(chat)/edit/", json: ["message_id": question.id, "content": "x"], token: session.access)
            #expect(busy.status == .conflict)
            #expect(try await t.send(.POST, "/api/chat/\(chat)/messages/\(question.id)/select/", token: session.access).status == .conflict)
            emulator.openGate()
            try await t.waitForReply(turn.assistant.id, chat: chat, token: session.access)
        }
    }

    @Test("an open stream is told the conversation changed and gets it whole; Last-Event-ID from before the change starts over",
          arguments: TestDatabase.all)
    func streamAcrossChanges(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            let (chat, question, first) = try await exchange(t, token: session.access)
            try await t.withLiveServer { base in
                let path = "/api/chat/\(chat)/messages/"
                let stream = try await EventStreamClient.open(base, path, token: session.access)
                _ = try await stream.waitFor("the replay") { $0.count == 2 }
                let oldID = try #require(stream.events.last?.id)
                #expect(oldID == "2")

                let response = try await t.send(.POST, "/api/chat/\(chat)/regenerate/", token: session.access)
                let reply = try #require(try response.jsonObject()["assistant_message"] as? [String: Any])
                let events = try await stream.waitForDone(reply.id)
                stream.close()
                let change = try #require(events.first { $0.type == "conversation" })
                #expect(change.json["revision"] as? Int == 1 && change.json["id"] as? String == chat)
                #expect(change.id == "r1.0")
                let after = events.drop { $0.type != "conversation" }.dropFirst()
                #expect(after.first?.json["id"] as? String == question.id, "the whole conversation follows")
                #expect(!after.contains { $0.json["id"] as? String == first.id }, "without the replaced reply")
                #expect(after.compactMap(\.id).allSatisfy { $0.hasPrefix("r1.") })

                // A reader that stopped before the change starts over; one within the revision resumes.
                let stale = try await EventStreamClient.open(base, path, token: session.access, lastEventID: oldID)
                let replayed = try await stale.waitFor("the conversation again") { $0.contains { $0.json["id"] as? String == reply.id } }
                stale.close()
                #expect(replayed.first?.type == "conversation")
                #expect(replayed.contains { $0.json["id"] as? String == question.id })
                let lastID = try #require(events.last?.id)
                let current = try await EventStreamClient.open(base, path, token: session.access, lastEventID: lastID)
                let next = try await t.sendMessage("More", chat: chat, token: session.access)
                let resumed = try await current.waitFor("the next message") { $0.contains { $0.json["id"] as? String == next.user.id } }
                current.close()
                #expect(resumed.first?.json["id"] as? String == next.user.id, "nothing before it: \(resumed.map(\.type))")
            }
        }
    }

    @Test("the current conversation is read in one indexed query, and nothing but the chat deletes a version", arguments: TestDatabase.all)
    func storage(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            let (chat, _, _) = try await exchange(t, token: session.access)
            for _ in 0..<3 {
                let reply = try #require(try await t.send(.POST, "/api/chat/\(chat)/regenerate/", token: session.access)
                    .jsonObject()["assistant_message"] as? [String: Any])
                try await t.waitForReply(reply.id, chat: chat, token: session.access)
            }
            #expect(try await t.messageCount() == 5, "a question and four replies")
            let sql = try t.db.sql()
            let plan: String
            if case .sqlite = database {
                plan = try await sql.raw("EXPLAIN QUERY PLAN SELECT id FROM messages WHERE chat_id = 'x' AND is_current AND sequence >= 0 ORDER BY sequence")
                    .all().map { try $0.decode(column: "detail", as: String.self) }.joined(separator: "; ")
            } else {
                try await sql.raw("SET LOCAL enable_seqscan = off").run()
                plan = try await sql.raw("EXPLAIN SELECT id FROM messages WHERE chat_id = '00000000-0000-0000-0000-000000000000' AND is_current AND sequence >= 0 ORDER BY sequence")
                    .all().map { try $0.decode(column: "QUERY PLAN", as: String.self) }.joined(separator: "; ")
            }
            #expect(plan.contains("idx_messages_current") || plan.contains("uq_messages_chat_sequence"), "\(plan)")
            #expect(try await t.send(.DELETE, "/api/chat/\(chat)/", token: session.access).status == .noContent)
            #expect(try await t.messageCount() == 0)
        }
    }
}
