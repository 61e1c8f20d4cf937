@testable import App
import Fluent
import Foundation
import Testing
import VaporTesting

@Suite("Admin management")
struct AdminManagementTests {
    /// A signed-in admin browser.
    private func signedIn(_ t: TestApp, superuser: Bool = false) async throws -> (AdminClient, User) {
        let admin = try await User.fixture(email: uniqueEmail("admin"), isStaff: true, isSuperuser: superuser, on: t.db)
        let browser = AdminClient(t)
        let response = try await browser.signIn(admin.email)
        try #require(response.status == .seeOther)
        return (browser, admin)
    }

    /// A chat with a finished exchange, made through the API.
    private func chat(_ t: TestApp, token: String, title: String, content: String) async throws -> [String: Any] {
        let chat = try await t.createChat(token: token, title: title, content: content)
        _ = try await t.waitForReply(try #require(chat.messages.last?.id), chat: chat.id, token: token)
        return chat
    }

    @Test("users: search, filters, sorting and pages", arguments: TestDatabase.all)
    func userList(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            for i in 0..<30 {
                let user = try await User.fixture(email: String(format: "bulk-%02d@example.com", i), password: nil, on: t.db)
                if i % 10 == 0 { user.role = .premium; try await user.save(on: t.db) }
            }
            _ = try await User.fixture(email: "other@example.com", password: nil, on: t.db)
            let (browser, _) = try await signedIn(t)

            try await browser.get("/admin/users/?q=BULK&sort=email")
            #expect(browser.html.contains("Page 1 of 2"))
            #expect(browser.html.components(separatedBy: "bulk-").count - 1 == 25)
            #expect(browser.html.range(of: "bulk-00")!.lowerBound < browser.html.range(of: "bulk-24")!.lowerBound)
            #expect(!browser.html.contains("other@example.com"))
            let next = try #require(browser.html.range(of: #"href="([^"]+)" rel="next""#, options: .regularExpression))
            #expect(browser.html[next].contains("q=BULK"))

            try await browser.get("/admin/users/?q=bulk&sort=email&page=2")
            #expect(browser.html.components(separatedBy: "bulk-").count - 1 == 5)
            #expect(browser.html.contains("bulk-29"))

            try await browser.get("/admin/users/?role=premium")
            #expect(browser.html.components(separatedBy: "bulk-").count - 1 == 3)
            try await browser.get("/admin/users/?staff=yes")
            #expect(!browser.html.contains("bulk-"))
            #expect(browser.html.contains("admin-"))
            try await browser.get("/admin/users/?q=%25")
            #expect(browser.html.contains("No users match."))
        }
    }

    @Test("users: edit, deactivate (signed out everywhere) and reset a password", arguments: TestDatabase.all)
    func editUser(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register(email: uniqueEmail("member"))
            let id = session.user.id
            let (browser, _) = try await signedIn(t)
            try await browser.get("/admin/users/\(id)/")
            #expect(browser.html.contains(session.user.email))

            let saved = try await browser.post("/admin/users/\(id)/", ["name": "Ada L.", "role": "premium", "is_active": "on"])
            #expect(saved.status == .seeOther)
            var user = try #require(try await User.find(UUID(uuidString: id), on: t.db))
            #expect(user.name == "Ada L.")
            #expect(user.role == .premium)
            #expect(user.isActive)
            #expect(!user.isStaff)

            try await browser.get("/admin/users/\(id)/")
            #expect(try await browser.post("/admin/users/\(id)/password/", ["new_password": "short"]).status == .badRequest)
            #expect(browser.html.contains("at least"))
            #expect(try await browser.post("/admin/users/\(id)/password/", ["new_password": "a brand new secret"]).status == .seeOther)
            #expect(try await t.login(email: session.user.email, password: "a brand new secret").status == .ok)
            #expect(try await t.send(.POST, "/auth/refresh/", json: ["refresh": session.refresh]).status == .unauthorized)

            try await browser.get("/admin/users/\(id)/")
            #expect(try await browser.post("/admin/users/\(id)/", ["name": "Ada L.", "role": "premium"]).status == .seeOther)
            user = try #require(try await User.find(UUID(uuidString: id), on: t.db))
            #expect(!user.isActive)
            #expect(try await t.login(email: session.user.email, password: "a brand new secret").status == .unauthorized)
        }
    }

    @Test("staff who are not superusers cannot change superusers or grant superuser; superusers can")
    func superuserRules() async throws {
        try await withTestApp(.sqlite) { t in
            let boss = try await User.fixture(email: uniqueEmail("boss"), isStaff: true, isSuperuser: true, on: t.db)
            let member = try await User.fixture(on: t.db)
            let (staff, staffUser) = try await signedIn(t)

            try await staff.get("/admin/users/\(try boss.requireID())/")
            #expect(staff.html.contains("Only a superuser can change a superuser."))
            #expect(try await staff.post("/admin/users/\(try boss.requireID())/", ["name": "x", "role": "basic", "is_staff": "on", "is_active": "on"]).status == .forbidden)
            #expect(try await staff.post("/admin/users/\(try boss.requireID())/delete/").status == .forbidden)
            #expect(try await staff.post("/admin/users/\(try boss.requireID())/password/", ["new_password": "taken over now"]).status == .forbidden)
            #expect(try await User.find(boss.id, on: t.db)?.name == "")

            try await staff.get("/admin/users/\(try member.requireID())/")
            #expect(!staff.html.contains("is_superuser"))
            _ = try await staff.post("/admin/users/\(try member.requireID())/", ["role": "basic", "is_staff": "on", "is_active": "on", "is_superuser": "on"])
            var changed = try #require(try await User.find(member.id, on: t.db))
            #expect(changed.isStaff)
            #expect(!changed.isSuperuser)

            // Nobody locks themselves out.
            try await staff.get("/admin/users/\(try staffUser.requireID())/")
            #expect(try await staff.post("/admin/users/\(try staffUser.requireID())/", ["role": "basic", "is_active": "on"]).status == .badRequest)
            #expect(try await staff.post("/admin/users/\(try staffUser.requireID())/delete/").status == .forbidden)

            let superBrowser = AdminClient(t)
            try await superBrowser.signIn(boss.email)
            try await superBrowser.get("/admin/users/\(try member.requireID())/")
            #expect(superBrowser.html.contains("is_superuser"))
            _ = try await superBrowser.post("/admin/users/\(try member.requireID())/", ["role": "basic", "is_staff": "on", "is_active": "on", "is_superuser": "on"])
            changed = try #require(try await User.find(member.id, on: t.db))
            #expect(changed.isSuperuser)
        }
    }

    @Test("deleting a user says what goes with it, then removes their chats and messages", arguments: TestDatabase.all)
    func deleteUser(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            _ = try await chat(t, token: session.access, title: "Doomed", content: "hello")
            let keeper = try await t.register()
            let kept = try await chat(t, token: keeper.access, title: "Kept", content: "hi")
            let (browser, _) = try await signedIn(t)

            try await browser.get("/admin/users/\(session.user.id)/delete/")
            #expect(browser.html.contains("1 chat(s) and their 2 message(s)"))
            let deleted = try await browser.post("/admin/users/\(session.user.id)/delete/")
            #expect(deleted.status == .seeOther)
            #expect(deleted.location == "/admin/users/?notice=deleted")
            #expect(try await User.find(UUID(uuidString: session.user.id), on: t.db) == nil)
            #expect(try await Chat.query(on: t.db).count() == 1)
            #expect(try await Message.query(on: t.db).count() == 2)
            #expect(try await Chat.find(UUID(uuidString: kept.id), on: t.db) != nil)
            try await browser.get("/admin/users/?notice=deleted")
            #expect(browser.html.contains("Deleted."))
        }
    }

    @Test("chats: search by title and owner, the conversation in order, edit, delete with messages", arguments: TestDatabase.all)
    func chats(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let alice = try await t.register(email: uniqueEmail("alice"))
            let bob = try await t.register(email: uniqueEmail("bob"))
            let trip = try await chat(t, token: alice.access, title: "Trip to Lisbon", content: "Where should I eat?")
            let followUp = try await t.sendMessage("And after dinner?", chat: trip.id, token: alice.access)
            _ = try await t.waitForReply(followUp.assistant.id, chat: trip.id, token: alice.access)
            _ = try await chat(t, token: bob.access, title: "Bob's taxes", content: "Deductions?")
            let (browser, _) = try await signedIn(t)

            try await browser.get("/admin/chats/?q=lisbon")
            #expect(browser.html.contains("Trip to Lisbon"))
            #expect(!browser.html.contains("taxes"))
            try await browser.get("/admin/chats/?owner=\(bob.user.email.uppercased())")
            #expect(browser.html.contains("Bob&#39;s taxes"))
            #expect(!browser.html.contains("Lisbon"))

            try await browser.get("/admin/chats/\(trip.id)/")
            let page = browser.html
            let first = try #require(page.range(of: "Where should I eat?"))
            let second = try #require(page.range(of: "And after dinner?"))
            #expect(first.lowerBound < second.lowerBound)
            #expect(page.contains("4 messages"))

            let bad = try await browser.post("/admin/chats/\(trip.id)/", ["title": "", "model": "gpt-nothing", "system": ""])
            #expect(bad.status == .badRequest)
            #expect(try await Chat.find(UUID(uuidString: trip.id), on: t.db)?.title == "Trip to Lisbon")
            try await browser.get("/admin/chats/\(trip.id)/")
            let saved = try await browser.post("/admin/chats/\(trip.id)/", ["title": "Lisbon, renamed", "model": "offline", "system": "Be brief."])
            #expect(saved.status == .seeOther)
            let edited = try #require(try await Chat.find(UUID(uuidString: trip.id), on: t.db))
            #expect(edited.title == "Lisbon, renamed")
            #expect(edited.system == "Be brief.")

            try await browser.get("/admin/chats/\(trip.id)/delete/")
            #expect(browser.html.contains("4 message(s)"))
            #expect(try await browser.post("/admin/chats/\(trip.id)/delete/").status == .seeOther)
            #expect(try await Chat.find(UUID(uuidString: trip.id), on: t.db) == nil)
            #expect(try await Message.query(on: t.db).count() == 2)
            #expect(try await t.send(.GET, "/api/chat/\(trip.id)/", token: alice.access).status == .notFound)
        }
    }

    @Test("messages: search by content, filter by role and status, delete one")
    func messages() async throws {
        try await withTestApp(.sqlite) { t in
            let session = try await t.register()
            let chat = try await chat(t, token: session.access, title: "Notes", content: "remember the milk")
            let (browser, _) = try await signedIn(t)

            // The offline provider's reply quotes the question, so the role filter tells them apart.
            try await browser.get("/admin/messages/?q=MILK")
            #expect(browser.html.contains("Messages <small>2</small>"))
            try await browser.get("/admin/messages/?q=MILK&role=user")
            #expect(browser.html.contains("remember the milk"))
            #expect(browser.html.contains("Messages <small>1</small>"))
            try await browser.get("/admin/messages/?role=assistant")
            #expect(!browser.html.contains("remember the milk"))
            #expect(browser.html.contains("Offline"))
            try await browser.get("/admin/messages/?status=failed")
            #expect(browser.html.contains("No messages match."))

            let userMessage = try #require(chat.messages.first?.id)
            try await browser.get("/admin/messages/\(userMessage)/delete/")
            #expect(try await browser.post("/admin/messages/\(userMessage)/delete/").status == .seeOther)
            #expect(try await Message.find(UUID(uuidString: userMessage), on: t.db) == nil)
            #expect(try await Message.query(on: t.db).count() == 1)
        }
    }

    @Test("untrusted text is escaped on every page")
    func escaping() async throws {
        try await withTestApp(.sqlite) { t in
            let hostile = #"<script>alert("x")</script><img src=x onerror=alert(1)>"#
            let session = try await t.register(name: hostile)
            let chat = try await chat(t, token: session.access, title: "<b>bold</b>", content: hostile)
            let (browser, _) = try await signedIn(t)
            for path in ["/admin/chats/\(chat.id)/", "/admin/messages/", "/admin/users/\(session.user.id)/",
                         "/admin/chats/", "/admin/messages/\(try #require(chat.messages.first?.id))/", "/admin/users/?q=%3Cscript"] {
                try await browser.get(path)
                #expect(!browser.html.contains("<script>"), "\(path)")
                #expect(!browser.html.contains("<img src=x"), "\(path)")
                #expect(!browser.html.contains("<b>bold</b>"), "\(path)")
            }
            try await browser.get("/admin/chats/\(chat.id)/")
            #expect(browser.html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"))
            #expect(browser.html.contains("&lt;b&gt;bold&lt;/b&gt;"))
        }
    }

    @Test("a long chat's conversation is read page by page", arguments: TestDatabase.all)
    func longChatPaged(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let owner = try await User.fixture(on: t.db)
            let chat = Chat(ownerID: try owner.requireID(), title: "Long", model: "offline", system: nil, now: Date())
            chat.nextSequence = 61
            try await chat.create(on: t.db)
            for n in 1...60 {
                try await Message(chatID: try chat.requireID(), sequence: n, role: n % 2 == 1 ? .user : .assistant,
                                  content: "message number \(n)!", status: .complete, model: "offline").create(on: t.db)
            }
            let (browser, _) = try await signedIn(t)
            let id = try chat.requireID()

            try await browser.get("/admin/chats/\(id)/")
            #expect(browser.html.contains("60 messages"))
            #expect(browser.html.contains("message number 1!"))
            #expect(browser.html.contains("message number 25!"))
            #expect(!browser.html.contains("message number 26!"))
            #expect(browser.html.contains("Page 1 of 3"))

            try await browser.get("/admin/chats/\(id)/?page=3")
            #expect(browser.html.contains("message number 60!"))
            #expect(!browser.html.contains("message number 50!"))
        }
    }
}
