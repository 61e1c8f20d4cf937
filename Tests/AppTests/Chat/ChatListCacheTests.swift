@testable import App
import Fluent
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SQLKit
import Testing
import VaporTesting

extension TestApp {
    /// `GET /api/chat/` as the server answers it (kept or read), and the same page as the database
    /// holds it now, read past the cache: the two must be the same bytes.
    func listedAndStored(_ session: SessionBody, sourceLocation: SourceLocation = #_sourceLocation) async throws -> (listed: String, stored: String) {
        let response = try await send(.GET, "/api/chat/", token: session.access, sourceLocation: sourceLocation)
        try #require(response.status == .ok, sourceLocation: sourceLocation)
        let query = ChatListQuery.Valid(limit: settings.chat.defaultPageSize, cursor: nil, search: nil)
        let stored = try await services.chat.service.readList(query, for: try #require(UUID(uuidString: session.user.id)), on: db)
        return (response.body.string, String(buffer: stored))
    }

    /// Expects the list answered now to be the stored one.
    func expectFreshList(_ session: SessionBody, _ why: Comment, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let (listed, stored) = try await listedAndStored(session, sourceLocation: sourceLocation)
        #expect(listed == stored, why, sourceLocation: sourceLocation)
    }

    /// Waits (with a deadline) until the list answered is the stored one: for changes made after a
    /// response, by a reply ending or by another instance.
    func waitForFreshList(_ session: SessionBody, _ why: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await waitUntil(why, sourceLocation: sourceLocation) {
            let (listed, stored) = try await listedAndStored(session, sourceLocation: sourceLocation)
            return listed == stored
        }
    }

    /// The titles of the first page, in order.
    func listedTitles(_ session: SessionBody) async throws -> [String] {
        let listed = try await send(.GET, "/api/chat/", token: session.access).jsonObject()
        return (listed["results"] as? [[String: Any]] ?? []).compactMap { $0["title"] as? String }
    }
}

@Suite("The chat list kept in memory")
struct ChatListCacheTests {
    @Test("the first page is kept, and every change to the user's chats shows in the next list", arguments: TestDatabase.all)
    func followsEveryChange(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let lists = try t.services.chat.lists
            let alice = try await t.register(email: uniqueEmail("alice"))
            let first = try await t.createChat(token: alice.access, title: "First")
            try await t.expectFreshList(alice, "a chat created shows")
            t.clock.advance(by: 1)  // each change a second later than the one before: the order is the activity's
            #expect(lists.count == 1, "the first page is kept")
            let kept = try await t.listedAndStored(alice)
            #expect(kept.listed == kept.stored && lists.count == 1, "asked again, it is answered from memory")

            let second = try await t.createChat(token: alice.access, content: "Where do herons nest?")
            try await t.expectFreshList(alice, "a chat created with a message shows")
            try await t.waitForReply(try #require(second.messages.last?.id), chat: second.id, token: alice.access)
            try await t.waitForFreshList(alice, "the reply's end and the title it gives the chat show")
            #expect(try await t.listedTitles(alice).last == "First")
            t.clock.advance(by: 1)

            #expect(try await t.send(.PATCH, "/api/chat/\(first.id)/", json: ["title": "Renamed", "system": "Be brief."],
                                     token: alice.access).status == .ok)
            try await t.expectFreshList(alice, "a rename and a new system prompt show")

            let turn = try await t.sendMessage("Still there?", chat: first.id, token: alice.access)
            try await t.expectFreshList(alice, "a message sent moves its chat first")
            #expect(try await t.listedTitles(alice).first == "Renamed")
            try await t.waitForReply(turn.assistant.id, chat: first.id, token: alice.access)
            try await t.waitForFreshList(alice, "the reply's end shows")
            t.clock.advance(by: 1)

            // A turn of the other chat: regenerated, edited, an earlier version chosen again.
            let regenerated = try await t.send(.POST, "/api/chat/\(second.id)/regenerate/", json: [:], token: alice.access)
            #expect(regenerated.status == .accepted)
            try await t.expectFreshList(alice, "a regeneration moves its chat first")
            let reply = try #require(try regenerated.jsonObject()["assistant_message"] as? [String: Any])
            try await t.waitForReply(reply.id, chat: second.id, token: alice.access)
            let question = try #require(second.messages.first?.id)
            let edited = try await t.send(.POST, "/api/chat/\(second.id)/edit/", json: ["message_id": question, "content": "Where do storks nest?"],
                                          token: alice.access)
            #expect(edited.status == .accepted)
            try await t.expectFreshList(alice, "an edit shows")
            let editedReply = try #require(try edited.jsonObject()["assistant_message"] as? [String: Any])
            try await t.waitForReply(editedReply.id, chat: second.id, token: alice.access)
            try await t.waitForFreshList(alice, "the edit's reply shows")
            #expect(try await t.send(.POST, "/api/chat/\(second.id)/messages/\(question)/select/", token: alice.access).status == .ok)
            try await t.expectFreshList(alice, "a version chosen shows")

            #expect(try await t.send(.DELETE, "/api/chat/\(first.id)/", token: alice.access).status == .noContent)
            try await t.expectFreshList(alice, "a deleted chat is gone at once")
            #expect(try await t.listedTitles(alice).count == 1)
        }
    }

    @Test("an admin's edit and deletion, and a change no instance hears of, show in the owner's list", arguments: TestDatabase.all)
    func changesFromElsewhere(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let alice = try await t.register(email: uniqueEmail("alice"))
            let chat = try await t.createChat(token: alice.access, title: "Trip")
            t.clock.advance(by: 1)
            _ = try await t.createChat(token: alice.access, title: "Taxes")
            try await t.expectFreshList(alice, "kept")

            let admin = try await User.fixture(email: uniqueEmail("admin"), isStaff: true, on: t.db)
            let browser = AdminClient(t)
            try #require(try await browser.signIn(admin.email).status == .seeOther)
            try await browser.get("/admin/chats/\(chat.id)/")
            #expect(try await browser.post("/admin/chats/\(chat.id)/", ["title": "Trip, renamed", "model": "offline", "system": ""]).status == .seeOther)
            try await t.expectFreshList(alice, "the admin's edit shows")
            #expect(try await t.listedTitles(alice) == ["Taxes", "Trip, renamed"])

            // Written where no instance hears of it (a command's process on SQLite, an operator's SQL):
            // answered as kept until the page's age runs out, then read again.
            try await t.db.sql().raw("UPDATE chats SET title = 'Written outside' WHERE title = 'Taxes'").run()
            #expect(try await t.listedTitles(alice) == ["Taxes", "Trip, renamed"], "kept for at most its age")
            t.clock.advance(by: ChatLists.maxAge + 1)
            #expect(try await t.listedTitles(alice) == ["Written outside", "Trip, renamed"])

            try await browser.get("/admin/chats/\(chat.id)/delete/")
            #expect(try await browser.post("/admin/chats/\(chat.id)/delete/").status == .seeOther)
            try await t.expectFreshList(alice, "the admin's deletion shows")
            #expect(try await t.listedTitles(alice) == ["Written outside"])
        }
    }

    @Test("each user's page is their own; a page of another size, a search and a cursor read the database")
    func ownPagesAndQueries() async throws {
        try await withTestApp(.sqlite) { t in
            let lists = try t.services.chat.lists
            let alice = try await t.register(email: uniqueEmail("alice"))
            let bob = try await t.register(email: uniqueEmail("bob"))
            for title in ["One", "Two", "Three"] {
                _ = try await t.createChat(token: alice.access, title: title)
                t.clock.advance(by: 1)
            }
            #expect(try await t.listedTitles(alice) == ["Three", "Two", "One"])
            #expect(try await t.listedTitles(bob).isEmpty, "another user's kept page is never answered")
            #expect(lists.count == 2)

            let small = try await t.send(.GET, "/api/chat/?limit=2", token: alice.access).jsonObject()
            #expect((small["results"] as? [[String: Any]])?.count == 2)
            let cursor = try #require(small["next"] as? String)
            #expect(try await t.listedTitles(alice) == ["Three", "Two", "One"], "the page of the default size again")
            let rest = try await t.send(.GET, "/api/chat/?limit=2&cursor=\(cursor)", token: alice.access).jsonObject()
            #expect((rest["results"] as? [[String: Any]])?.compactMap { $0["title"] as? String } == ["One"])
            let found = try await t.send(.GET, "/api/chat/?q=tw", token: alice.access).jsonObject()
            #expect((found["results"] as? [[String: Any]])?.compactMap { $0["title"] as? String } == ["Two"])
        }
    }

    @Test("a page larger than 16 KiB is read each time, never kept")
    func largePagesNotKept() async throws {
        try await withTestApp(.sqlite) { t in
            let lists = try t.services.chat.lists
            let alice = try await t.register(email: uniqueEmail("alice"))
            // Twenty chats with 1,000-character system prompts of two-byte characters: about 40 KB of JSON.
            for index in 0..<20 {
                _ = try await t.createChat(token: alice.access, title: "Chat \(index)", system: String(repeating: "é", count: 1_000))
            }
            let listed = try await t.send(.GET, "/api/chat/", token: alice.access)
            #expect(listed.status == .ok)
            #expect(listed.body.readableBytes > ChatLists.maxPageBytes)
            #expect(lists.count == 0)
            try await t.expectFreshList(alice, "answered all the same")
        }
    }

    @Test("the account's deletion forgets its page")
    func deletedUserForgotten() async throws {
        try await withTestApp(.sqlite) { t in
            let lists = try t.services.chat.lists
            let alice = try await t.register(email: uniqueEmail("alice"))
            _ = try await t.createChat(token: alice.access, title: "Mine")
            #expect(try await t.listedTitles(alice) == ["Mine"])
            #expect(lists.count == 1)
            #expect(try await t.send(.DELETE, "/auth/me/", json: ["password": testPassword], token: alice.access).status == .noContent)
            #expect(lists.count == 0)
        }
    }

    @Test("a read that raced a change is not kept; a change forgets only its own key")
    func racingReadNotKept() async throws {
        let clock = TestClock()
        let cache = ChangeAwareCache<String, Int>(clock: clock, maxAge: 10, capacity: 10)
        let announced = NIOLockedValueBox<[String?]>([])
        cache.announceChanges { key in announced.withLockedValue { $0.append(key) } }
        #expect(try await cache.value(for: "a") { 1 } == 1)
        #expect(try await cache.value(for: "b") { 1 } == 1)
        // A read under way when "a" changes answers what it read, but it is not kept.
        let raced = try await cache.value(for: "c") {
            cache.changed("a")
            return 1
        }
        #expect(raced == 1)
        #expect(try await cache.value(for: "c") { 2 } == 2, "the raced read was not kept")
        #expect(try await cache.value(for: "a") { 2 } == 2, "the changed key is read again")
        #expect(try await cache.value(for: "b") { 3 } == 1, "another key stays")
        #expect(try await cache.value(for: "b", usable: { $0 > 1 }) { 4 } == 4, "an unusable entry is read again")
        #expect(try await cache.value(for: "d", keeping: { $0 < 0 }) { 5 } == 5)
        #expect(try await cache.value(for: "d") { 6 } == 6, "a value `keeping` refused is not kept")
        clock.advance(by: 11)
        #expect(try await cache.value(for: "a") { 7 } == 7, "past its age an entry is read again")
        cache.changedAll()
        #expect(announced.withLockedValue { $0 } == ["a", nil])
        #expect(cache.count == 0)
    }

    @Test("a change on one instance shows in the other's kept list; an instance that could not hear forgets every list",
          .enabled(if: TestDatabase.postgresURL != nil))
    func acrossInstances() async throws {
        try await withTwoInstances(emulated: false) { a, b, _ in
            let alice = try await a.register(email: uniqueEmail("alice"))
            let chat = try await a.createChat(token: alice.access, title: "One")
            #expect(try await b.listedTitles(alice) == ["One"])
            #expect(try b.services.chat.lists.count == 1)
            #expect(try await a.send(.PATCH, "/api/chat/\(chat.id)/", json: ["title": "Renamed"], token: alice.access).status == .ok)
            // B's clock never moves: only the bus can make it read the page again.
            try await b.waitForFreshList(alice, "the rename on A to show on B")
            #expect(try await b.listedTitles(alice) == ["Renamed"])
            _ = try await b.createChat(token: alice.access, title: "Two")
            try await a.waitForFreshList(alice, "a chat created on B to show on A")

            let bus = try #require(try b.services.chat.bus as? ChatBus)
            _ = try await b.listedTitles(alice)
            #expect(try b.services.chat.lists.count == 1)
            bus.lostTrack()
            #expect(try b.services.chat.lists.count == 0)
        }
    }

    @Test("the bus carries a chat list's change, and a change of every list", arguments: [UUID(), nil] as [UUID?])
    func notificationRoundTrip(_ user: UUID?) {
        let notification = BusNotification.chatListChanged(user)
        #expect(notification.isControl)
        let parsed = BusNotification.parse(notification.payload(from: "instance-1"))
        #expect(parsed?.instance == "instance-1")
        #expect(parsed?.notification == notification)
    }

    @Test("a list payload that is not one of ours is dropped, never read as another user's list; fields a newer version adds are ignored")
    func hostileListPayloads() {
        let user = UUID()
        for payload in ["lists", "lists|i|not-a-uuid", "lists|i|\(user.uuidString.dropLast())", "lists|i|\(user.uuidString)x",
                        "lists|i||", "LISTS|i|\(user.uuidString)", "lists|i|" + String(repeating: "a", count: 8000),
                        "lists|i|\u{0}\(user.uuidString)"] {
            let parsed = BusNotification.parse(payload)
            #expect(parsed == nil || parsed?.notification == .chatListChanged(nil), "\(payload.prefix(40))")
            if case .chatListChanged(let named?)? = parsed?.notification { Issue.record("\(payload.prefix(40)) named \(named)") }
        }
        #expect(BusNotification.parse("lists|i|\(user.uuidString.lowercased())|later-field")?.notification == .chatListChanged(user))
        #expect(BusNotification.parse("lists|i|\(user.uuidString.lowercased())")?.instance == "i")
    }
}
