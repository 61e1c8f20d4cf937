import AnthropicEmulator
@testable import App
import Foundation
import Testing
import VaporTesting

@Suite("Attachments: files on messages, to the model as it can take them")
struct AttachmentTests {
    @Test("an image and a PDF reach Claude as image and document blocks with identical bytes, and later turns send them again",
          arguments: TestDatabase.all)
    func toClaude(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let pdf = TestFiles.pdf(["Kumquat harvest report"])
            let image = try await t.uploaded(TestFiles.png, name: "shot.png", token: session.access)
            let document = try await t.uploaded(pdf, name: "report.pdf", token: session.access)
            let created = try await t.send(.POST, "/api/chat/", json: ["content": "What is in these?", "attachments": [image.id, document.id]],
                                           token: session.access)
            try #require(created.status == .created, "\(created.body.string)")
            let chat = try created.jsonObject()
            let chatID = try #require(chat["id"] as? String)
            let messages = try #require(chat["messages"] as? [[String: Any]])
            let listed = try #require(messages[0]["attachments"] as? [[String: Any]])
            #expect(listed.map { $0["id"] as? String } == [image.id, document.id])
            #expect(listed.map { $0["name"] as? String } == ["shot.png", "report.pdf"])
            #expect(messages[1]["attachments"] as? [Any] != nil)
            try await t.waitForReply(try #require(messages[1]["id"] as? String), chat: chatID, token: session.access)

            let first = try #require(emulator.requests.last)
            #expect(first.attachments.first?.map(\.kind) == ["image", "document"])
            #expect(first.attachments.first?.first?.data == TestFiles.png)
            #expect(first.attachments.first?.first?.mediaType == "image/png")
            #expect(first.attachments.first?.last?.data == pdf)
            #expect(first.attachments.first?.last?.name == "report.pdf")
            #expect(first.messages.first?.content == "What is in these?")

            // The next turn sends the conversation again, files included.
            let turn = try await t.sendMessage("And now?", chat: chatID, token: session.access)
            try await t.waitForReply(try #require(turn.assistant["id"] as? String), chat: chatID, token: session.access)
            let second = try #require(emulator.requests.last)
            #expect(second.attachments.first?.map(\.data) == [TestFiles.png, pdf])
            #expect(second.attachments.last == [])

            // The chat as read lists them too; the stream's replay carries them.
            let read = try await t.chat(chatID, token: session.access)
            let stored = try #require((read["messages"] as? [[String: Any]])?.first?["attachments"] as? [[String: Any]])
            #expect(stored.count == 2)
            #expect(stored.first?["sha256"] as? String == TestFiles.png.sha256Hex)
        }
    }

    @Test("OpenAI-compatible: an image as an image_url data URL; a PDF as its text for a model without documents; a text file as text",
          arguments: TestDatabase.all)
    func toOpenAI(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["MODEL_CAPABILITIES": "openai/gpt-emu=vision"], emulated: true, api: .openai) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let image = try await t.uploaded(TestFiles.png, name: "shot.png", token: session.access)
            let document = try await t.uploaded(TestFiles.pdf(["Kumquat harvest report"]), name: "report.pdf", token: session.access)
            let notes = try await t.uploaded(Data("kumquat-7391 notes".utf8), name: "notes.md", token: session.access)
            let chat = try await t.createChat(token: session.access)
            let chatID = try #require(chat["id"] as? String)
            let sent = try await t.send(.POST, "/api/chat/\(chatID)/send/", json: ["content": "", "attachments": [image.id, document.id, notes.id]],
                                        token: session.access)
            try #require(sent.status == .accepted, "\(sent.body.string)")
            let reply = try #require((try sent.jsonObject()["assistant_message"] as? [String: Any])?["id"] as? String)
            try await t.waitForReply(reply, chat: chatID, token: session.access)
            let request = try #require(emulator.requests.last)
            #expect(request.attachments.first == [RecordedAttachment(kind: "image_url", mediaType: "image/png", data: TestFiles.png)])
            let text = try #require(request.messages.first?.content)
            #expect(text.contains("Attached file \"report.pdf\""))
            #expect(text.contains("Kumquat harvest report"))
            #expect(text.contains("Attached file \"notes.md\":\n\nkumquat-7391 notes"))
        }
    }

    @Test("files a model cannot take are refused before anything is stored", arguments: TestDatabase.all)
    func refusedForTheModel(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true, api: .openai) { t in
            let session = try await t.register()
            let image = try await t.uploaded(TestFiles.png, name: "shot.png", token: session.access)
            let chat = try await t.createChat(token: session.access)
            let chatID = try #require(chat["id"] as? String)
            let before = try await t.messageCount()
            // The OpenAI-compatible model has no vision by default.
            let refused = try await t.send(.POST, "/api/chat/\(chatID)/send/", json: ["content": "Look", "attachments": [image.id]],
                                           token: session.access)
            #expect(refused.status == .badRequest)
            #expect(try refused.problem().code == "unsupported_attachment")
            let created = try await t.send(.POST, "/api/chat/", json: ["content": "Look", "attachments": [image.id]], token: session.access)
            #expect(try created.problem().code == "unsupported_attachment")
            #expect(try await t.messageCount() == before)
            #expect(try await t.fileRows().links == 0)

            // A text file longer than the model reads at once.
            let long = try await t.uploaded(Data(repeating: 0x61, count: 1 << 20), name: "long.txt", token: session.access)
            let tooLong = try await t.send(.POST, "/api/chat/\(chatID)/send/", json: ["content": "Read", "attachments": [long.id]],
                                           token: session.access)
            #expect(try tooLong.problem().code == "unsupported_attachment")
            #expect(try await t.messageCount() == before)
        }
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            let wide = try await t.uploaded(TestFiles.png(width: 9000, height: 10), name: "wide.png", token: session.access)
            let heavy = try await t.uploaded(TestFiles.png(width: 10, height: 10, padding: 5 << 20), name: "heavy.png", token: session.access)
            let chat = try await t.createChat(token: session.access)
            let chatID = try #require(chat["id"] as? String)
            for file in [wide, heavy] {
                let refused = try await t.send(.POST, "/api/chat/\(chatID)/send/", json: ["content": "Look", "attachments": [file.id]],
                                               token: session.access)
                #expect(refused.status == .badRequest)
                #expect(try refused.problem().code == "unsupported_attachment", "\(file.name)")
            }
            #expect(try await t.messageCount() == 0)
        }
    }

    @Test("another user's file, an unknown id, a repeated id or more than 20 files: 400 on attachments, nothing stored", arguments: TestDatabase.all)
    func badIDs(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register(), other = try await t.register()
            let theirs = try await t.uploaded(TestFiles.png, name: "theirs.png", token: other.access)
            let mine = try await t.uploaded(TestFiles.png, name: "mine.png", token: session.access)
            let chat = try await t.createChat(token: session.access)
            let chatID = try #require(chat["id"] as? String)
            let cases: [(String, Any)] = [
                ("another user's file", [theirs.id]), ("an unknown id", [UUID().uuidString.lowercased()]), ("not a UUID", ["../etc"]),
                ("a repeated id", [mine.id, mine.id]), ("21 files", Array(repeating: mine.id, count: 21)), ("not a list", mine.id),
                ("a number", [1]),
            ]
            for (what, attachments) in cases {
                let response = try await t.send(.POST, "/api/chat/\(chatID)/send/", json: ["content": "Hi", "attachments": attachments],
                                                token: session.access)
                #expect(response.status == .badRequest, "\(what): \(response.status)")
                if what != "not a list" && what != "a number" {
                    #expect(try response.problem().errors?["attachments"] != nil, "\(what)")
                }
            }
            // Without text, files are needed.
            let empty = try await t.send(.POST, "/api/chat/\(chatID)/send/", json: ["content": "", "attachments": []], token: session.access)
            #expect(try empty.problem().errors?["content"] != nil)
            #expect(try await t.messageCount() == 0)
            #expect(try await t.fileRows().links == 0)
        }
    }

    @Test("a used file cannot be deleted; deleting the chat deletes the files only it used; files attached to nothing go after a day",
          arguments: TestDatabase.all)
    func lifetimes(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            let shared = try await t.uploaded(TestFiles.png, name: "shared.png", token: session.access)
            let only = try await t.uploaded(Data("only here".utf8), name: "only.txt", token: session.access)
            let loose = try await t.uploaded(Data("attached to nothing".utf8), name: "loose.txt", token: session.access)
            var chats: [String] = []
            for files in [[shared.id, only.id], [shared.id]] {
                let created = try await t.send(.POST, "/api/chat/", json: ["content": "Hi", "attachments": files], token: session.access)
                try #require(created.status == .created, "\(created.body.string)")
                let chat = try created.jsonObject()
                chats.append(try #require(chat["id"] as? String))
                let reply = try #require((chat["messages"] as? [[String: Any]])?.last?["id"] as? String)
                try await t.waitForReply(reply, chat: chats.last ?? "", token: session.access)
            }
            let inUse = try await t.send(.DELETE, "/api/files/\(only.id)/", token: session.access)
            #expect(inUse.status == .conflict)

            #expect(try await t.send(.DELETE, "/api/chat/\(chats[0])/", token: session.access).status == .noContent)
            #expect(try await t.send(.GET, "/api/files/\(only.id)/", token: session.access).status == .notFound)
            #expect(try await t.send(.GET, "/api/files/\(shared.id)/", token: session.access).status == .ok)

            // The sweep: nothing attached to nothing is a day old yet; then it is.
            let sweep = FileSweep(files: try t.services.files, database: { t.db }, logger: t.app.logger)
            await sweep.run(now: t.clock.now())
            #expect(try await t.send(.GET, "/api/files/\(loose.id)/", token: session.access).status == .ok)
            await sweep.run(now: t.clock.now().addingTimeInterval(86_401))
            #expect(try await t.send(.GET, "/api/files/\(loose.id)/", token: session.access).status == .notFound)
            #expect(try await t.send(.GET, "/api/files/\(shared.id)/", token: session.access).status == .ok)

            #expect(try await t.send(.DELETE, "/api/chat/\(chats[1])/", token: session.access).status == .noContent)
            #expect(try await t.fileRows() == (0, 0, 0))
        }
    }

    @Test("an edit keeps the original's files unless it names others; a regeneration on a model without vision is refused",
          arguments: TestDatabase.all)
    func editAndRegenerate(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["MODEL_CAPABILITIES": "claude-haiku-5="], emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            let image = try await t.uploaded(TestFiles.png, name: "shot.png", token: session.access)
            let created = try await t.send(.POST, "/api/chat/", json: ["content": "Look", "attachments": [image.id]], token: session.access)
            let chat = try created.jsonObject()
            let chatID = try #require(chat["id"] as? String)
            let messages = try #require(chat["messages"] as? [[String: Any]])
            let question = try #require(messages[0]["id"] as? String)
            try await t.waitForReply(try #require(messages[1]["id"] as? String), chat: chatID, token: session.access)

            let edited = try await t.send(.POST, "/api/chat/\(chatID)/edit/", json: ["message_id": question, "content": "Look again"],
                                          token: session.access)
            try #require(edited.status == .accepted, "\(edited.body.string)")
            let body = try edited.jsonObject()
            let user = try #require(body["user_message"] as? [String: Any])
            #expect((user["attachments"] as? [[String: Any]])?.first?["id"] as? String == image.id)
            try await t.waitForReply(try #require((body["assistant_message"] as? [String: Any])?["id"] as? String), chat: chatID,
                                     token: session.access)
            #expect(emulator.requests.last?.attachments.first?.first?.data == TestFiles.png)

            let regenerate = try await t.send(.POST, "/api/chat/\(chatID)/regenerate/", json: ["model": "claude-haiku-5"], token: session.access)
            #expect(regenerate.status == .badRequest)
            #expect(try regenerate.problem().code == "unsupported_attachment")

            let without = try await t.send(.POST, "/api/chat/\(chatID)/edit/",
                                           json: ["message_id": try #require(user["id"] as? String), "content": "No picture", "attachments": []],
                                           token: session.access)
            try #require(without.status == .accepted, "\(without.body.string)")
            #expect(((try without.jsonObject()["user_message"] as? [String: Any])?["attachments"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("a file uploaded on one instance is read and attached on another", .enabled(if: TestDatabase.postgresURL != nil))
    func acrossInstances() async throws {
        try await withTwoInstances { a, b, _ in
            let session = try await a.register()
            let file = try await a.uploaded(TestFiles.png(width: 10, height: 10, padding: 600 << 10), name: "shot.png", token: session.access)
            let content = try await b.send(.GET, "/api/files/\(file.id)/content/", token: session.access)
            #expect(Data(buffer: content.body).sha256Hex == file.sha256)
            let created = try await b.send(.POST, "/api/chat/", json: ["content": "Look", "attachments": [file.id]], token: session.access)
            #expect(created.status == .created)
        }
    }
}

@Suite("Attachments in the export and the admin")
struct AttachmentViewsTests {
    @Test("the export names a message's files; the admin's message page lists them", arguments: TestDatabase.all)
    func named(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let session = try await t.register()
            let image = try await t.uploaded(TestFiles.png, name: "kumquat <b>.png", token: session.access)
            let created = try await t.send(.POST, "/api/chat/", json: ["content": "Look", "attachments": [image.id]], token: session.access)
            let chat = try created.jsonObject()
            let chatID = try #require(chat["id"] as? String)
            let messages = try #require(chat["messages"] as? [[String: Any]])
            try await t.waitForReply(try #require(messages[1]["id"] as? String), chat: chatID, token: session.access)

            let markdown = try await t.send(.GET, "/api/chat/\(chatID)/export/?format=markdown", token: session.access)
            #expect(markdown.body.string.contains("📎 kumquat <b>.png (image/png, 70 bytes)"))
            let json = try await t.send(.GET, "/api/chat/\(chatID)/export/?format=json", token: session.access)
            #expect(json.body.string.contains("\"name\":\"kumquat <b>.png\""))

            let staff = try await User.fixture(isStaff: true, on: t.db)
            let browser = AdminClient(t)
            _ = try await browser.signIn(staff.email)
            let page = try await browser.get("/admin/messages/\(try #require(messages[0]["id"] as? String))/")
            #expect(page.status == .ok)
            #expect(page.body.string.contains("kumquat &lt;b&gt;.png"))
            #expect(page.body.string.contains(TestFiles.png.sha256Hex))
        }
    }
}
