import AnthropicEmulator
@testable import App
import Foundation
import NIOHTTP1
import Testing
import VaporTesting

extension TestApp {
    /// A chat of `token`'s user with one question and its finished reply; its id.
    func answeredChat(_ token: String, question: String = "Hello <b>there</b>", title: String = "Shared <i>chat</i>") async throws -> String {
        try #require(emulator).enqueue(.reply(["Hi", " & ", "<script>alert(1)</script>"]))
        let chat = try await createChat(token: token, title: title, content: question)
        let id = try #require(chat["id"] as? String)
        let messages = chat["messages"] as? [[String: Any]] ?? []
        if let reply = messages.last?["id"] as? String { try await waitForReply(reply, chat: id, token: token) }
        return id
    }

    func share(_ chatID: String, token: String, json: [String: Any] = [:]) async throws -> [String: Any] {
        let response = try await send(.POST, "/api/chat/\(chatID)/share/", json: json, token: token)
        try #require(response.status == .created, "\(response.status): \(response.body.string)")
        return try response.jsonObject()
    }
}

@Suite("Share links: snapshots their owner makes, lists and revokes, read as SHARE_LINKS allows")
struct ShareTests {
    @Test("a share is a snapshot: later changes do not reach it; another signed-in user reads it (users mode), without usage; revoked, it is 404 at once",
          arguments: TestDatabase.all)
    func lifecycle(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["PUBLIC_URL": "https://chat.example.com/"], emulated: true) { t in
            let owner = try await t.register()
            let chatID = try await t.answeredChat(owner.access)
            let share = try await t.share(chatID, token: owner.access)
            let id = try #require(share["id"] as? String)
            #expect(id.utf8.count >= 22 && id.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
            #expect(share["url"] as? String == "https://chat.example.com/s/\(id)" && share["chat_id"] as? String == chatID)
            #expect(share["expires_at"] is NSNull)

            // Changes after sharing do not reach the snapshot.
            #expect(try await t.send(.PATCH, "/api/chat/\(chatID)/", json: ["title": "Renamed"], token: owner.access).status == .ok)
            let reader = try await t.register()
            let read = try await t.send(.GET, "/api/shares/\(id)/", token: reader.access)
            #expect(read.status == .ok && read.headers.first(name: "X-Robots-Tag") == "noindex")
            let body = try read.jsonObject()
            #expect(body["title"] as? String == "Shared <i>chat</i>")
            let messages = try #require(body["messages"] as? [[String: Any]])
            #expect(messages.map { $0["content"] as? String } == ["Hello <b>there</b>", "Hi & <script>alert(1)</script>"])
            #expect(messages.allSatisfy { $0["input_tokens"] == nil && $0["output_tokens"] == nil }, "no usage")
            #expect(messages.allSatisfy { $0["reasoning"] != nil && $0["tool_calls"] is [Any] })

            // Signed out: 401 in users mode.
            #expect(try await t.send(.GET, "/api/shares/\(id)/").status == .unauthorized)
            // Listed for its owner only; revoked by its owner only.
            let listed = try await t.send(.GET, "/api/shares/", token: owner.access).jsonObject()["results"] as? [[String: Any]]
            #expect(listed?.compactMap { $0["id"] as? String } == [id])
            #expect((try await t.send(.GET, "/api/shares/", token: reader.access).jsonObject()["results"] as? [Any])?.isEmpty == true)
            #expect(try await t.send(.DELETE, "/api/shares/\(id)/", token: reader.access).status == .notFound)
            #expect(try await t.send(.DELETE, "/api/shares/\(id)/", token: owner.access).status == .noContent)
            #expect(try await t.send(.GET, "/api/shares/\(id)/", token: reader.access).status == .notFound)
            #expect(try await t.send(.GET, "/s/\(id)").status == .notFound)
        }
    }

    @Test("public mode: anyone reads a link, and /s/<id> is rendered by the server, every text escaped, under a strict CSP, not indexed")
    func publicPage() async throws {
        try await withTestApp(.sqlite, settings: ["SHARE_LINKS": "public"], emulated: true) { t in
            let owner = try await t.register()
            let id = try #require(try await t.share(try await t.answeredChat(owner.access), token: owner.access)["id"] as? String)
            #expect(try await t.send(.GET, "/api/shares/\(id)/").status == .ok)
            let page = try await t.send(.GET, "/s/\(id)")
            #expect(page.status == .ok && page.headers.first(name: .contentType)?.hasPrefix("text/html") == true)
            let html = page.body.string
            #expect(html.contains("Hello &lt;b&gt;there&lt;/b&gt;") && html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(html.contains("Shared &lt;i&gt;chat&lt;/i&gt;") && !html.contains("<script>alert") && !html.contains("<b>there"))
            let policy = try #require(page.headers.first(name: "Content-Security-Policy"))
            #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && !policy.contains("unsafe"))
            #expect(page.headers.first(name: "X-Robots-Tag")?.contains("noindex") == true && html.contains("noindex"))
        }
    }

    @Test("off: no link is made (403 sharing_disabled) and every existing one is 404")
    func off() async throws {
        try await withTestApp(.sqlite, settings: ["SHARE_LINKS": "off"], emulated: true) { t in
            let owner = try await t.register()
            let chatID = try await t.answeredChat(owner.access)
            let refused = try await t.send(.POST, "/api/chat/\(chatID)/share/", json: [:], token: owner.access)
            #expect(refused.status == .forbidden)
            #expect(try refused.problem().code == "sharing_disabled")
            let id = ShareService.newID()
            try await ShareLink(id: id, chatID: try #require(UUID(uuidString: chatID)), ownerID: try #require(UUID(uuidString: owner.user.id)),
                                title: "x", snapshot: "[]", createdAt: t.clock.now(), expiresAt: nil).create(on: t.db)
            #expect(try await t.send(.GET, "/api/shares/\(id)/", token: owner.access).status == .notFound)
            #expect(try await t.send(.GET, "/api/shares/\(id)/").status == .notFound, "404 signed in or not")
            #expect(try await t.send(.GET, "/s/\(id)").status == .notFound)
        }
    }

    @Test("the page's escaping works scalar by scalar: a quote or bracket followed by a combining mark (one Character to Swift) is still escaped")
    func escaping() {
        for hostile in ["a\"\u{301} srcset=/x", "<\u{338}script>", "'\u{200D}onload", "&\u{FE0F}amp;"] {
            let escaped = SharePageController.escape(hostile)
            #expect(!escaped.unicodeScalars.contains { "\"<>'".unicodeScalars.contains($0) }, "\(escaped)")
        }
        #expect(SharePageController.escape("Tom & \"Jerry\" <3 'x'") == "Tom &amp; &quot;Jerry&quot; &lt;3 &#39;x&#39;")
    }

    @Test("bad input: someone else's chat and unknown chats 404; an expiry out of range 400; malformed, guessed and expired ids 404; a deleted chat's links 404",
          arguments: TestDatabase.all)
    func hostileInput(_ database: TestDatabase) async throws {
        try await withTestApp(database, emulated: true) { t in
            let owner = try await t.register()
            let other = try await t.register()
            let chatID = try await t.answeredChat(owner.access)
            #expect(try await t.send(.POST, "/api/chat/\(chatID)/share/", json: [:], token: other.access).status == .notFound)
            #expect(try await t.send(.POST, "/api/chat/\(UUID().lowercased)/share/", json: [:], token: owner.access).status == .notFound)
            for days in [0, 3651, -1] as [Any] + ["7", 1.5] {
                let response = try await t.send(.POST, "/api/chat/\(chatID)/share/", json: ["expires_in_days": days], token: owner.access)
                #expect(response.status == .badRequest, "expires_in_days \(days)")
            }
            let reader = try await t.register()
            for id in ["short", String(repeating: "a", count: 65), "..%2F..%2Fetc", "AAAAAAAAAAAAAAAAAAAAAAAA", ShareService.newID()] {
                #expect(try await t.send(.GET, "/api/shares/\(id)/", token: reader.access).status == .notFound, "\(id)")
                #expect(try await t.send(.DELETE, "/api/shares/\(id)/", token: owner.access).status == .notFound, "\(id)")
            }
            // Expiring: readable until its day comes (a day later every token has expired too: new sessions).
            let expiring = try #require(try await t.share(chatID, token: owner.access, json: ["expires_in_days": 1])["id"] as? String)
            let kept = try #require(try await t.share(chatID, token: owner.access)["id"] as? String)
            #expect(try await t.send(.GET, "/api/shares/\(expiring)/", token: reader.access).status == .ok)
            t.clock.advance(by: 86_401)
            let later = try await t.register()
            #expect(try await t.send(.GET, "/api/shares/\(expiring)/", token: later.access).status == .notFound)
            #expect(try await t.send(.GET, "/api/shares/\(kept)/", token: later.access).status == .ok)
            // A deleted chat takes its links with it.
            let again = try await t.login(email: owner.user.email).jsonObject()
            let token = try #require(again["access"] as? String)
            #expect(try await t.send(.DELETE, "/api/chat/\(chatID)/", token: token).status == .noContent)
            #expect(try await t.send(.GET, "/api/shares/\(kept)/", token: later.access).status == .notFound)
        }
    }

    @Test("a snapshot shows its images, to whoever may open the link; a file the snapshot does not show is 404")
    func images() async throws {
        try await withTestApp(.sqlite, emulated: true) { t in
            let owner = try await t.register()
            let image = try await t.upload(TestFiles.png, name: "pixel.png", type: "image/png", token: owner.access).jsonObject()
            let other = try await t.upload(TestFiles.png(width: 2, height: 2), name: "other.png", type: "image/png", token: owner.access).jsonObject()
            try #require(t.emulator).enqueue(.reply(["A pixel"]))
            let created = try await t.send(.POST, "/api/chat/", json: ["content": "Look", "attachments": [image["id"] as Any]], token: owner.access)
            #expect(created.status == .created)
            let chatID = try #require(try created.jsonObject()["id"] as? String)
            let reply = try #require((try created.jsonObject()["messages"] as? [[String: Any]])?.last?["id"] as? String)
            try await t.waitForReply(reply, chat: chatID, token: owner.access)
            let id = try #require(try await t.share(chatID, token: owner.access)["id"] as? String)
            let reader = try await t.register()
            let shown = try await t.send(.GET, "/api/shares/\(id)/files/\(try #require(image["id"] as? String))/", token: reader.access)
            #expect(shown.status == .ok && Data(buffer: shown.body) == TestFiles.png)
            #expect(try await t.send(.GET, "/api/shares/\(id)/files/\(try #require(other["id"] as? String))/", token: reader.access).status == .notFound)
            #expect(try await t.send(.GET, "/api/shares/\(id)/files/not-a-uuid/", token: reader.access).status == .notFound)
        }
    }

    @Test("a link revoked on one instance is 404 on another at once")
    func revokedEverywhere() async throws {
        try await withTwoInstances { a, b, _ in
            let owner = try await a.register()
            let reader = try await b.register()
            let id = try #require(try await a.share(try await a.answeredChat(owner.access), token: owner.access)["id"] as? String)
            #expect(try await b.send(.GET, "/api/shares/\(id)/", token: reader.access).status == .ok)
            #expect(try await a.send(.DELETE, "/api/shares/\(id)/", token: owner.access).status == .noContent)
            #expect(try await b.send(.GET, "/api/shares/\(id)/", token: reader.access).status == .notFound)
        }
    }
}
