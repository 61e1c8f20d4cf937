@testable import App
import AnthropicEmulator
import Crypto
import Fluent
import Foundation
import SQLKit
import Testing
import VaporTesting

/// A ZIP as Python's `zipfile` reads it (an independent reader): its CRC check, and each entry —
/// text for `.json` and `.md`, the SHA-256 of anything else.
private func unzip(_ archive: ByteBuffer) async throws -> (bad: String?, entries: [String: String]) {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("export-\(UUID().uuidString).zip").path
    try Data(archive.readableBytesView).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let script = """
        import hashlib, json, sys, zipfile
        z = zipfile.ZipFile(sys.argv[1])
        out = {"bad": z.testzip(), "entries": {}}
        for info in z.infolist():
            data = z.read(info)
            out["entries"][info.filename] = data.decode() if info.filename.endswith((".json", ".md")) else hashlib.sha256(data).hexdigest()
        print(json.dumps(out))
        """
    let (status, output) = try await Subprocess.run(["python3", "-c", script, path], timeout: .seconds(30))
    try #require(status == 0, "python3 zipfile: \(output)")
    let line = try #require(output.split(separator: "\n").last)
    let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    return (json["bad"] as? String, try #require(json["entries"] as? [String: String]))
}

private func object(_ text: String?) throws -> [String: Any] {
    let text = try #require(text)
    return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

@Suite("Your account: self-service")
struct SelfServiceTests {
    @Test("the display name is changed with PATCH /auth/me/; bad names are 400 and change nothing", arguments: TestDatabase.all)
    func rename(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register(name: "Ada")
            let renamed = try await t.send(.PATCH, "/auth/me/", json: ["name": "  Ada Lovelace "], token: session.access)
            #expect(renamed.status == .ok)
            #expect(try renamed.jsonObject()["name"] as? String == "Ada Lovelace")
            #expect(try await t.send(.GET, "/auth/me/", token: session.access).jsonObject()["name"] as? String == "Ada Lovelace")

            let fits = String(repeating: "😀", count: 150)
            #expect(try await t.send(.PATCH, "/auth/me/", json: ["name": fits], token: session.access).status == .ok, "150 characters of 4 bytes")
            let bad: [[String: Any]] = [[:], ["name": 42], ["name": NSNull()], ["name": String(repeating: "a", count: 151)],
                                        ["name": fits + "😀"], ["name": "A\u{0}B"]]
            for body in bad {
                let response = try await t.send(.PATCH, "/auth/me/", json: body, token: session.access)
                #expect(response.status == .badRequest, "\(body)")
            }
            #expect(try await t.send(.GET, "/auth/me/", token: session.access).jsonObject()["name"] as? String == fits)
            #expect(try await t.send(.PATCH, "/auth/me/", json: ["name": ""], token: session.access).status == .ok, "an empty name clears it")
            #expect(try await t.send(.PATCH, "/auth/me/", json: ["name": "x"]).status == .unauthorized)
        }
    }

    @Test("a password change signs out every other session (refresh, access, open streams) and answers the one that lives",
          arguments: TestDatabase.all)
    func changePassword(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let email = uniqueEmail()
            let here = try await t.register(email: email)
            let elsewhere = try await t.login(email: email).decoded(SessionBody.self)
            let chat = try await t.createChat(token: here.access, title: "Kept")

            let wrong = try await t.send(.POST, "/auth/password/", json: ["current_password": "not it at all", "new_password": "a new long secret"],
                                         token: here.access)
            #expect(wrong.status == .badRequest)
            #expect(try wrong.problem().errors?["current_password"] != nil)
            let weak = try await t.send(.POST, "/auth/password/", json: ["current_password": testPassword, "new_password": "12345678"],
                                        token: here.access)
            #expect(try weak.problem().errors?["new_password"] != nil)
            for body: [String: Any] in [[:], ["current_password": testPassword], ["current_password": 1, "new_password": "a new long secret"],
                                        ["current_password": String(repeating: "x", count: 73), "new_password": "a new long secret"],
                                        ["current_password": testPassword, "new_password": String(repeating: "é", count: 40)]] {
                #expect(try await t.send(.POST, "/auth/password/", json: body, token: here.access).status == .badRequest, "\(body)")
            }
            #expect(try await t.login(email: email).status == .ok, "nothing changed yet")

            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: elsewhere.access)
                let changed = try await t.send(.POST, "/auth/password/", json: ["current_password": testPassword, "new_password": "a new long secret"],
                                               token: here.access)
                #expect(changed.status == .ok)
                let session = try changed.decoded(SessionBody.self)
                try await stream.waitFor("the other session's stream to end", timeout: .seconds(5)) { $0.contains { $0.type == "error" } }
                stream.close()

                for old in [here.access, elsewhere.access] {
                    #expect(try await t.send(.GET, "/auth/me/", token: old).status == .unauthorized, "every older access token")
                }
                for old in [here.refresh, elsewhere.refresh] {
                    #expect(try await t.send(.POST, "/auth/refresh/", json: ["refresh": old]).status == .unauthorized, "every older refresh token")
                }
                #expect(try await t.send(.GET, "/api/chat/\(chat.id)/", token: session.access).status == .ok, "the new session lives")
                #expect(try await t.send(.POST, "/auth/refresh/", json: ["refresh": session.refresh]).status == .ok)
            }
            #expect(try await t.login(email: email).status == .unauthorized)
            #expect(try await t.login(email: email, password: "a new long secret").status == .ok)
        }
    }

    @Test("after a password change the answered session streams on: a stream opened with it right away hears the next reply")
    func streamAfterPasswordChange() async throws {
        try await withTestApp(.sqlite, settings: ["OFFLINE_WORD_DELAY": "0"]) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Hello")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            try await t.withLiveServer { base in
                let old = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                let changed = try await t.send(.POST, "/auth/password/", json: ["current_password": testPassword, "new_password": "a new long secret"],
                                               token: session.access).decoded(SessionBody.self)
                let events = try await old.waitFor("the old stream to end", timeout: .seconds(5)) { $0.contains { $0.type == "error" } }
                old.close()
                // Reconnected as a browser does: from the last event id it saw.
                let lastID = events.last { $0.id != nil }?.id
                let refreshed = try await t.send(.POST, "/auth/refresh/", json: ["refresh": changed.refresh]).decoded(TokenPairBody.self)
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: refreshed.access, lastEventID: lastID)
                let next = try await t.sendMessage("Again", chat: chat.id, token: refreshed.access)
                _ = try await stream.waitForDone(next.assistant.id)
                stream.close()
            }
        }
    }

    @Test("an account that signs in through a provider has no password to change")
    func noPasswordToChange() async throws {
        try await withTestApp(.sqlite) { t in
            let user = User(email: "sso@example.com", passwordHash: nil)
            try await user.create(on: t.db)
            let tokens = try await t.services.sessions.start(for: user, on: t.db)
            let refused = try await t.send(.POST, "/auth/password/", json: ["current_password": "anything at all", "new_password": "a new long secret"],
                                           token: tokens.access)
            #expect(refused.status == .badRequest)
            #expect(try refused.problem().errors?["current_password"]?.first?.contains("no password") == true)
            #expect(try await User.find(email: "sso@example.com", on: t.db)?.passwordHash == nil)
        }
    }

    @Test("signing out everywhere ends every session, this one included")
    func signOutEverywhere() async throws {
        try await withTestApp(.sqlite) { t in
            let email = uniqueEmail()
            let one = try await t.register(email: email)
            let two = try await t.login(email: email).decoded(SessionBody.self)
            #expect(try await t.send(.POST, "/auth/sessions/revoke/", token: one.access).status == .noContent)
            for session in [one, two] {
                #expect(try await t.send(.GET, "/auth/me/", token: session.access).status == .unauthorized)
                #expect(try await t.send(.POST, "/auth/refresh/", json: ["refresh": session.refresh]).status == .unauthorized)
            }
            #expect(try await t.login(email: email).status == .ok, "the password still signs in")
        }
    }

    @Test("deleting the account takes all it owns in one go, mid-reply too; a wrong password changes nothing; usage is kept without it",
          arguments: TestDatabase.all)
    func deleteAccount(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let emulator = try #require(t.emulator)
            let bystander = try await t.register()
            let theirs = try await t.createChat(token: bystander.access, title: "Theirs", content: "Hello")
            try await t.waitForReply(theirs.messages[1].id, chat: theirs.id, token: bystander.access)

            let session = try await t.register()
            let done = try await t.createChat(token: session.access, content: "Hi")
            try await t.waitForReply(done.messages[1].id, chat: done.id, token: session.access)
            let file = try await t.uploaded(Data("notes".utf8), name: "notes.txt", token: session.access)
            _ = try await t.send(.POST, "/api/keys/", json: ["name": "script"], token: session.access)
            let share = try await t.send(.POST, "/api/chat/\(done.id)/share/", json: [:], token: session.access).jsonObject()
            emulator.enqueue(.hangBeforeHeaders)
            let streaming = try await t.createChat(token: session.access, content: "Take your time")

            for body: [String: Any] in [["password": "not the password"], [:], ["password": 5]] {
                let refused = try await t.send(.DELETE, "/auth/me/", json: body, token: session.access)
                #expect(refused.status == .badRequest, "\(body)")
            }
            #expect(try await t.send(.GET, "/api/chat/\(done.id)/", token: session.access).status == .ok, "nothing deleted")

            let deleted = try await t.send(.DELETE, "/auth/me/", json: ["password": testPassword], token: session.access)
            #expect(deleted.status == .noContent)
            #expect(try await t.send(.GET, "/auth/me/", token: session.access).status == .unauthorized)
            #expect(try await t.login(email: session.user.email).status == .unauthorized)
            let userID = try #require(UUID(uuidString: session.user.id))
            #expect(try await Chat.query(on: t.db).filter(\.$owner.$id == userID).count() == 0)
            #expect(try await t.db.sql().raw("SELECT COUNT(*) AS n FROM messages WHERE chat_id IN (\(bind: try #require(UUID(uuidString: done.id))), \(bind: try #require(UUID(uuidString: streaming.id))))").first()?.decode(column: "n", as: Int.self) == 0)
            #expect(try await t.db.sql().raw("SELECT COUNT(*) AS n FROM files WHERE id = \(bind: try #require(UUID(uuidString: file.id)))").first()?.decode(column: "n", as: Int.self) == 0)
            #expect(try await t.db.sql().raw("SELECT COUNT(*) AS n FROM api_keys WHERE user_id = \(bind: userID)").first()?.decode(column: "n", as: Int.self) == 0)
            #expect(try await t.send(.GET, "/api/shares/\(try #require(share["id"] as? String))/", token: bystander.access).status == .notFound)
            // The reply that completed, and the one the deletion stopped (counted as it ends), without their account.
            try await waitUntil("both replies counted without the account") {
                try await t.db.sql().raw("SELECT COALESCE(SUM(replies), 0) AS n FROM usage_daily WHERE user_id IS NULL").first()?
                    .decode(column: "n", as: Int.self) == 2
            }
            #expect(try await t.chat(theirs.id, token: bystander.access)["title"] as? String == "Theirs", "another account untouched")
            #expect(try await t.db.sql().raw("SELECT COUNT(*) AS n FROM usage_daily WHERE user_id = \(bind: try #require(UUID(uuidString: bystander.user.id)))").first()?.decode(column: "n", as: Int.self) == 1)
        }
    }

    @Test("an account without a password deletes itself only within five minutes of signing in (403 reauthentication_required)")
    func deleteWithoutPassword() async throws {
        try await withTestApp(.sqlite) { t in
            let user = User(email: "sso@example.com", passwordHash: nil)
            try await user.create(on: t.db)
            let tokens = try await t.services.sessions.start(for: user, on: t.db)
            t.clock.advance(by: 6 * 60)
            let late = try await t.send(.DELETE, "/auth/me/", token: tokens.access)
            #expect(late.status == .forbidden)
            #expect(try late.jsonObject()["code"] as? String == "reauthentication_required")
            // A token refreshed now is recent; the sign-in behind it is not.
            let refreshed = try await t.send(.POST, "/auth/refresh/", json: ["refresh": tokens.refresh]).decoded(TokenPairBody.self)
            #expect(try await t.send(.DELETE, "/auth/me/", token: refreshed.access).status == .forbidden)
            #expect(try await t.userCount() == 1)

            // A new sign-in (a new session) is recent.
            let fresh = try await t.services.sessions.start(for: user, on: t.db)
            #expect(try await t.send(.DELETE, "/auth/me/", token: fresh.access).status == .noContent)
            #expect(try await t.userCount() == 0)
        }
    }

    @Test("the export is a ZIP, streamed, of the account, every chat with every version as JSON and the conversation as Markdown, the files and the usage — nobody else's",
          arguments: TestDatabase.all)
    func export(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let other = try await t.register()
            _ = try await t.createChat(token: other.access, title: "Not yours", content: "Secret")
            let session = try await t.register(name: "Ada")
            let chat = try await t.createChat(token: session.access, title: "Trip", content: "Plan a trip")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            let again = try #require(try await t.send(.POST, "/api/chat/\(chat.id)/regenerate/", token: session.access)
                .jsonObject()["assistant_message"] as? [String: Any])
            try await t.waitForReply(again.id, chat: chat.id, token: session.access)
            let bytes = Data((0..<70_000).map { UInt8(0x41 + $0 % 26) })
            let file = try await t.uploaded(bytes, name: "../../etc/passwd.txt", token: session.access)

            let response = try await t.send(.GET, "/auth/me/export/", token: session.access)
            #expect(response.status == .ok)
            #expect(response.headers.contentType?.description == "application/zip")
            #expect(response.headers.first(name: .contentDisposition)?.contains("chatserver-export-") == true)
            #expect(response.headers.first(name: .contentLength) == nil, "streamed, not sized up front")
            let (bad, entries) = try await unzip(response.body)
            #expect(bad == nil, "every CRC checks")

            let account = try object(entries["account.json"])
            #expect((account["user"] as? [String: Any])?["email"] as? String == session.user.email)
            let json = try object(entries["chats/\(chat.id).json"])
            let messages = try #require(json["messages"] as? [[String: Any]])
            #expect(messages.count == 3, "the question and both versions of the answer")
            #expect(messages.filter { $0["current"] as? Bool == true }.count == 2)
            let markdown = try #require(entries["chats/\(chat.id).md"])
            #expect(markdown.hasPrefix("# Trip"))
            #expect(entries["files/\(file.id)/passwd.txt"] == SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined(),
                    "the bytes, under the name as stored: \(entries.keys.sorted())")
            let usage = try #require(try object(entries["usage.json"])["days"] as? [[String: Any]])
            #expect(usage.reduce(0) { $0 + ($1["replies"] as? Int ?? 0) } == 2)
            #expect(entries.count == 5)
            #expect(!entries.values.contains { $0.contains("Not yours") || $0.contains("Secret") }, "nothing of another account")
            #expect(try await t.send(.GET, "/auth/me/export/").status == .unauthorized)

            // Mid-reply: the reply as it stands, still streaming.
            let emulator = try #require(t.emulator)
            emulator.enqueue(.hangBeforeHeaders)
            let busy = try await t.createChat(token: session.access, content: "Take your time")
            let during = try await t.send(.GET, "/auth/me/export/", token: session.access)
            #expect(during.status == .ok)
            let midReply = try await unzip(during.body)
            #expect(midReply.bad == nil)
            let streaming = try #require(try object(midReply.entries["chats/\(busy.id).json"])["messages"] as? [[String: Any]])
            #expect(streaming.last?["status"] as? String == "streaming")
        }
    }
}
