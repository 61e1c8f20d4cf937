@testable import App
import AnthropicEmulator
import Fluent
import Foundation
import SQLKit
import Testing
import VaporTesting

/// The database goes away under load, and comes back.
@Suite("Database outages")
struct OutageTests {
    @Test("PostgreSQL unreachable mid-reply: requests get 503 problem+json at once, /readyz is not ready, the reply's text is kept and stored once the database is back, and the pool recovers by itself",
          .enabled(if: TestDatabase.postgresURL != nil))
    func postgresOutage() async throws {
        let url = try #require(TestDatabase.postgresURL)
        let components = try #require(URLComponents(string: url))
        let proxy = try await TCPProxy.start(to: components.host ?? "127.0.0.1", port: components.port ?? 5432)
        var proxied = components
        proxied.port = proxy.port
        let through = try #require(proxied.string)
        do {
            try await withTestApp(.postgres(url: through), settings: ["REQUEST_TIMEOUT": "20s"], emulated: true) { t in
                let emulator = try #require(t.emulator)
                let chunks = ["Kept", " through", " the", " outage"]
                emulator.enqueue(.reply(Script.Reply(chunks, pauseAfter: 2)))
                let session = try await t.register()
                let chat = try await t.createChat(token: session.access, title: "Outage")
                try await t.withLiveServer { base in
                    let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                    let turn = try await t.sendMessage("go", chat: chat.id, token: session.access)
                    try await stream.waitFor("two pieces") { $0.replyText(turn.assistant.id) == chunks.prefix(2).joined() }

                    await proxy.drop(refuse: true)
                    let listed = try await t.send(.GET, "/api/chat/", token: session.access)
                    #expect(listed.status == .serviceUnavailable)
                    let problem = try listed.problem()
                    #expect(problem.title == "Database unavailable", "answered at once, not by the request timeout")
                    #expect(listed.headers.first(name: "Retry-After") != nil)
                    let created = try await t.send(.POST, "/api/chat/", json: ["title": "Not now"], token: session.access)
                    #expect(created.status == .serviceUnavailable)
                    #expect(try await t.send(.GET, "/readyz").status == .serviceUnavailable)

                    // The reply ends while the database is away: its streams get the text live,
                    // and its end is stored once the database is back.
                    emulator.openGate()
                    try await stream.waitFor("the rest of the text") { $0.replyText(turn.assistant.id) == chunks.joined() }
                    proxy.restore()
                    try await waitUntil("the pool to recover") { try await t.send(.GET, "/readyz").status == .ok }
                    let events = try await stream.waitForDone(turn.assistant.id)
                    stream.close()
                    #expect(events.last?.json["status"] as? String == "complete")

                    let messages = try await t.chat(chat.id, token: session.access).messages
                    #expect(messages.count == 2, "nothing lost, nothing twice")
                    #expect(messages.last?["content"] as? String == chunks.joined())
                    #expect(messages.last?["status"] as? String == "complete")
                    let chats = try await t.send(.GET, "/api/chat/", token: session.access).jsonObject()
                    #expect((chats["results"] as? [Any])?.count == 1, "the refused create stored nothing")
                }
            }
        } catch {
            await proxy.shutdown()
            throw error
        }
        await proxy.shutdown()
    }

    @Test("a reply stopped while the database is away does not hold shutdown for the lease")
    func stoppedDuringOutageDoesNotHoldShutdown() async throws {
        try await withTestApp(.sqlite, settings: ["REPLY_LEASE": "600s"], emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Half", " way"], pauseAfter: 1)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Outage")
            let turn = try await t.sendMessage("go", chat: chat.id, token: session.access)
            try await waitUntil("the reply to pause") { emulator.pausedCount == 1 }
            try await onEveryConnection(t, "PRAGMA query_only = 1")
            let chatID = try #require(UUID(uuidString: chat.id))
            let runner = try t.services.chat.runner
            let reply = try #require(runner.replies.reply(in: chatID))
            reply.stop(.stoppedByUser)
            let started = ContinuousClock.now
            await runner.drain(timeout: .seconds(1))
            #expect(started.duration(to: .now) < .seconds(60), "the stopped reply's end was given up at shutdown, not at the lease")
            try await onEveryConnection(t, "PRAGMA query_only = 0")
            _ = turn
        }
    }

    @Test("SQLite read-only or out of space: a write is 503 problem+json saying so, nothing is stored, reads go on")
    func sqliteCannotWrite() async throws {
        try await withTestApp(.sqlite, settings: ["CHAT_MAX_SYSTEM_LENGTH": "300000"]) { t in
            let session = try await t.register()
            _ = try await t.createChat(token: session.access, title: "Before")

            try await onEveryConnection(t, "PRAGMA query_only = 1")
            let readOnly = try await t.send(.POST, "/api/chat/", json: ["title": "Read-only"], token: session.access)
            #expect(readOnly.status == .serviceUnavailable)
            let problem = try readOnly.problem()
            #expect(problem.detail?.contains("read-only") == true)
            #expect(try await t.send(.GET, "/api/chat/", token: session.access).status == .ok, "reads go on")
            try await onEveryConnection(t, "PRAGMA query_only = 0")

            // No page more than the file has now: the next write that needs one finds the disk full.
            let pages = try #require(try await t.db.sql().raw("PRAGMA page_count").first()?.decode(column: "page_count", as: Int.self))
            try await onEveryConnection(t, "PRAGMA max_page_count = \(pages)")
            let big = String(repeating: "x", count: 200_000)
            let full = try await t.send(.POST, "/api/chat/", json: ["title": "Full", "system": big], token: session.access)
            #expect(full.status == .serviceUnavailable)
            #expect(try full.problem().detail?.contains("disk is full") == true)

            let chats = try await t.send(.GET, "/api/chat/", token: session.access).jsonObject()
            #expect((chats["results"] as? [Any])?.count == 1, "nothing was stored")
        }
    }
}

@Suite("Outages: the account's own endpoints")
struct AccountOutageTests {
    @Test("with the database unable to write, a rename, a password change, a sign-out everywhere, a deletion and a provider's sign-in are 503 and change nothing")
    func accountWritesWhileReadOnly() async throws {
        try await withTwoProviders { t, corp, _ in
            let session = try await t.register(name: "Ada")
            try await onEveryConnection(t, "PRAGMA query_only = 1")
            let attempts: [(HTTPMethod, String, [String: Any])] = [
                (.PATCH, "/auth/me/", ["name": "Changed"]),
                (.POST, "/auth/password/", ["current_password": testPassword, "new_password": "a new long secret"]),
                (.POST, "/auth/sessions/revoke/", [:]),
                (.DELETE, "/auth/me/", ["password": testPassword]),
            ]
            for (method, path, body) in attempts {
                let response = try await t.send(method, path, json: body, token: session.access)
                #expect(response.status == .serviceUnavailable, "\(method) \(path)")
                _ = try response.problem()
            }
            // A provider's sign-in fails for the server's reason, not the provider's.
            let signIn = try await t.send(.GET, "/auth/oidc/corp/login/")
            #expect(signIn.status == .serviceUnavailable, "the attempt cannot be stored")
            try await onEveryConnection(t, "PRAGMA query_only = 0")
            let begun = try await t.send(.GET, "/auth/oidc/corp/login/")
            let location = try #require(begun.headers.first(name: .location))
            let cookie = try #require(begun.headers.first(name: .setCookie)?.split(separator: ";").first.map(String.init))
            let callback = try corp.authorize(location)
            try await onEveryConnection(t, "PRAGMA query_only = 1")
            let json = try await t.send(.GET, callback, headers: ["Cookie": cookie, "Accept": "application/json"])
            #expect(json.status == .serviceUnavailable, "not 502: the provider answered")
            try await onEveryConnection(t, "PRAGMA query_only = 0")

            let me = try await t.send(.GET, "/auth/me/", token: session.access)
            #expect(me.status == .ok, "still signed in")
            #expect(try me.jsonObject()["name"] as? String == "Ada")
            #expect(try await t.login(email: session.user.email).status == .ok, "the password is unchanged")
            #expect(try await t.userCount() == 1)
        }
    }
}

/// Runs `sql` on each of the application's SQLite connections (one per event loop).
private func onEveryConnection(_ t: TestApp, _ sql: String) async throws {
    for eventLoop in t.app.eventLoopGroup.makeIterator() {
        guard let database = t.app.databases.database(logger: t.app.logger, on: eventLoop) else { continue }
        try await database.sql().raw(SQLQueryString(sql)).run()
    }
}
