@testable import App
import Foundation
import NIOHTTP1
import Testing
import VaporTesting

extension TestApp {
    /// Makes an API key for `session`'s user; answers the key as `POST /api/keys/` did.
    func makeKey(_ session: SessionBody, name: String = "script", scope: String = "inference", expiresInDays: Int? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any] {
        var json: [String: Any] = ["name": name, "scope": scope]
        if let expiresInDays { json["expires_in_days"] = expiresInDays }
        let response = try await send(.POST, "/api/keys/", json: json, token: session.access, sourceLocation: sourceLocation)
        try #require(response.status == .created, "\(response.status): \(response.body.string)", sourceLocation: sourceLocation)
        return try response.jsonObject()
    }
}

@Suite("API keys: made, listed and revoked by their owner")
struct APIKeyTests {
    @Test("a key is shown once, listed without its secret, stored only hashed, lets its owner in within its scope, and is refused at once once revoked",
          arguments: TestDatabase.all)
    func lifecycle(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let full = try await t.makeKey(session, name: "deploy", scope: "full")
            let secret = try #require(full["key"] as? String)
            #expect(secret.hasPrefix("csk_") && secret.utf8.count == 47)
            #expect(full["prefix"] as? String == String(secret.prefix(12)) && full["scope"] as? String == "full")
            #expect(full["expires_at"] is NSNull && full["last_used_at"] is NSNull)
            let stored = try #require(try await APIKey.query(on: t.db).first())
            #expect(stored.secretHash != secret && !stored.secretHash.contains(secret.dropFirst(4)), "only a hash is stored")

            let listed = try await t.send(.GET, "/api/keys/", token: session.access).jsonObject()["results"] as? [[String: Any]]
            #expect(listed?.count == 1 && listed?.first?["key"] == nil && listed?.first?["name"] as? String == "deploy")

            // A full key reaches /api/; an inference key does not.
            #expect(try await t.send(.GET, "/api/chat/", token: secret).status == .ok)
            let inference = try #require(try await t.makeKey(session)["key"] as? String)
            let refused = try await t.send(.GET, "/api/chat/", token: inference)
            #expect(refused.status == .forbidden)
            #expect(try refused.problem().code == "key_not_accepted")

            // Revoked: refused at once (the cache forgets it), by the next request.
            let id = try #require(full["id"] as? String)
            #expect(try await t.send(.DELETE, "/api/keys/\(id)/", token: session.access).status == .noContent)
            let after = try await t.send(.GET, "/api/chat/", token: secret)
            #expect(after.status == .unauthorized && after.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
            #expect(try await t.send(.DELETE, "/api/keys/\(id)/", token: session.access).status == .notFound)
            // Someone else's key is as absent as one that never existed.
            let other = try await t.register()
            let theirs = try #require(try await t.makeKey(other)["id"] as? String)
            #expect(try await t.send(.DELETE, "/api/keys/\(theirs)/", token: session.access).status == .notFound)
            #expect(try await t.send(.DELETE, "/api/keys/not-a-uuid/", token: session.access).status == .notFound)
        }
    }

    @Test("bad input is 400 and makes nothing: a name missing, blank, too long in characters or bytes, with a NUL; an unknown scope; an expiry out of range or not a number",
          arguments: TestDatabase.all)
    func hostileInput(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let bad: [([String: Any], String)] = [
                ([:], "name"), (["name": "   "], "name"), (["name": String(repeating: "k", count: 101)], "name"),
                (["name": String(repeating: "😀", count: 101)], "name"), (["name": "a\u{0}b"], "name"),
                (["name": "k", "scope": "admin"], "scope"), (["name": "k", "scope": 1], "scope"),
                (["name": "k", "expires_in_days": 0], "expires_in_days"), (["name": "k", "expires_in_days": 3651], "expires_in_days"),
                (["name": "k", "expires_in_days": Int.max], "expires_in_days"), (["name": "k", "expires_in_days": "7"], "expires_in_days"),
                (["name": "k", "expires_in_days": 1.5], "expires_in_days"),
            ]
            for (json, field) in bad {
                let response = try await t.send(.POST, "/api/keys/", json: json, token: session.access)
                #expect(response.status == .badRequest, "\(json)")
                let problem = try response.problem()
                #expect(problem.errors?[field] != nil || problem.errors == nil, "\(json): \(problem)")
            }
            #expect(try await APIKey.query(on: t.db).count() == 0, "nothing made")
            #expect(try await t.send(.POST, "/api/keys/", json: ["name": "k"]).status == .unauthorized)
        }
    }

    @Test("at most 100 keys per user, even when made at once: exactly as many as fit are made, the rest 409", arguments: TestDatabase.all)
    func limit(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let userID = try #require(UUID(uuidString: session.user.id))
            for index in 0..<(APIKeys.maxPerUser - 5) {
                try await APIKey(ownerID: userID, name: "k\(index)", scope: .inference, prefix: "csk_x", secretHash: "h\(index)",
                                 createdAt: Date(), expiresAt: nil).create(on: t.db)
            }
            let statuses = try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { group in
                for index in 0..<12 {
                    group.addTask { try await t.send(.POST, "/api/keys/", json: ["name": "race \(index)"], token: session.access).status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .created }.count == 5 && statuses.filter { $0 == .conflict }.count == 7, "\(statuses)")
            #expect(try await APIKey.query(on: t.db).count() == APIKeys.maxPerUser)
        }
    }

    @Test("a key past its expiry is refused; last_used_at is written at most once a minute, not once a request")
    func expiryAndLastUse() async throws {
        try await withTestApp(.sqlite) { t in
            let session = try await t.register()
            let key = try await t.makeKey(session, scope: "full", expiresInDays: 1)
            let secret = try #require(key["key"] as? String)
            func lastUsed() async throws -> String? {
                let listed = try await t.send(.GET, "/api/keys/", token: session.access).jsonObject()["results"] as? [[String: Any]]
                return listed?.first?["last_used_at"] as? String
            }
            #expect(try await t.send(.GET, "/api/chat/", token: secret).status == .ok)
            try await waitUntil("the use to be written") { try await lastUsed() != nil }
            let first = try await lastUsed()
            t.clock.advance(by: 30)
            for _ in 0..<5 { #expect(try await t.send(.GET, "/api/chat/", token: secret).status == .ok) }
            #expect(try await lastUsed() == first, "no write within the minute")
            t.clock.advance(by: 31)
            #expect(try await t.send(.GET, "/api/chat/", token: secret).status == .ok)
            try await waitUntil("the next minute's use to be written") { try await lastUsed() != first }

            t.clock.advance(by: 86_400)
            #expect(try await t.send(.GET, "/api/chat/", token: secret).status == .unauthorized, "expired")
        }
    }

    @Test("a key's calls count toward its owner's rate limit, as their access token's do")
    func rateLimited() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_USER": "3/minute"]) { t in
            let session = try await t.register()
            let secret = try #require(try await t.makeKey(session, scope: "full")["key"] as? String)
            // Making the key was the first call of the minute.
            var statuses: [HTTPResponseStatus] = []
            statuses.append(try await t.send(.GET, "/api/chat/", token: secret).status)
            statuses.append(try await t.send(.GET, "/api/chat/", token: session.access).status)
            #expect(statuses.allSatisfy { $0 == .ok }, "\(statuses)")
            #expect(try await t.send(.GET, "/api/chat/", token: secret).status == .tooManyRequests)
        }
    }

    @Test("no key, of either scope, gets anything outside its scope: every route the router registers, answered as it answers no credentials at all, or 403")
    func everyRoute() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_ENABLED": "false"]) { t in
            let session = try await t.register()
            let keys = ["inference": try #require(try await t.makeKey(session, scope: "inference")["key"] as? String),
                        "full": try #require(try await t.makeKey(session, scope: "full")["key"] as? String)]
            let placeholder = UUID().lowercased
            var walked = 0
            for route in t.app.routes.all {
                let path = "/" + route.path.map { component -> String in
                    switch component {
                    case .constant(let value): value
                    case .parameter: placeholder
                    case .anything, .catchall: "x"
                    }
                }.joined(separator: "/") + "/"
                for (scope, key) in keys {
                    let allowed = path.hasPrefix("/v1/") || scope == "full" && path.hasPrefix("/api/") && !path.hasPrefix("/api/keys/")
                    guard !allowed else { continue }
                    let anonymous = try await t.send(route.method, path)
                    let withKey = try await t.send(route.method, path, token: key)
                    #expect(withKey.status == anonymous.status || withKey.status == .forbidden,
                            "\(route.method) \(path) with a \(scope) key: \(withKey.status), anonymously \(anonymous.status)")
                    walked += 1
                }
            }
            #expect(walked > 60, "walked \(walked) route × scope pairs")
        }
    }

    @Test("staff see a user's keys (never a secret) and revoke one (CSRF-protected): it is refused at once")
    func admin() async throws {
        try await withTestApp(.sqlite) { t in
            let session = try await t.register()
            let key = try await t.makeKey(session, name: "<b>laptop</b>", scope: "full")
            let secret = try #require(key["key"] as? String)
            let admin = try await User.fixture(email: uniqueEmail("admin"), isStaff: true, isSuperuser: true, on: t.db)
            let browser = AdminClient(t)
            #expect(try await browser.signIn(admin.email).status == .seeOther)
            #expect(try await browser.get("/admin/users/\(session.user.id)/").status == .ok)
            let html = browser.html
            #expect(html.contains("&lt;b&gt;laptop&lt;/b&gt;") && html.contains("<code>\(secret.prefix(12))…</code>"))
            #expect(!html.contains(secret), "never the secret")
            let path = "/admin/users/\(session.user.id)/keys/\(try #require(key["id"] as? String))/revoke"
            #expect(try await browser.post(path, csrf: "forged").status == .forbidden)
            #expect(try await t.send(.GET, "/api/chat/", token: secret).status == .ok)
            let revoked = try await browser.post(path)
            #expect(revoked.status == .seeOther)
            #expect(try await t.send(.GET, "/api/chat/", token: secret).status == .unauthorized)
            // A key is never a way into the admin.
            #expect(try await t.send(.GET, "/admin/users/", token: secret).status != .ok)
        }
    }

    @Test("a key revoked on one instance is refused on another at once, by the bus (B's memory of it never expires on the test clock)")
    func revokedEverywhere() async throws {
        try await withTwoInstances(emulated: false) { a, b, _ in
            let session = try await a.register()
            let key = try await a.makeKey(session, scope: "full")
            let secret = try #require(key["key"] as? String)
            #expect(try await b.send(.GET, "/api/chat/", token: secret).status == .ok, "known to B, and kept in its memory")
            #expect(try await b.send(.GET, "/v1/models", token: secret).status == .ok)
            #expect(try await a.send(.DELETE, "/api/keys/\(try #require(key["id"] as? String))/", token: session.access).status == .noContent)
            // B keeps recognised keys for 10 s of its clock, which stands still in tests: only the
            // bus's announcement can make it forget the key (how fast it arrives is the machine's).
            try await waitUntil("B to refuse the key", timeout: .seconds(10)) {
                try await b.send(.GET, "/api/chat/", token: secret).status == .unauthorized
            }
            #expect(try await b.send(.GET, "/v1/models", token: secret).status == .unauthorized, "on /v1 too")
        }
    }

    @Test("a stream opened with a key ends with an error event when the key is revoked; one opened with the user's token goes on", arguments: TestDatabase.all)
    func streamEndsOnRevocation(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let key = try await t.makeKey(session, scope: "full")
            let secret = try #require(key["key"] as? String)
            let chat = try await t.createChat(token: session.access, title: "Streams")
            try await t.withLiveServer { base in
                let path = "/api/chat/\(chat.id)/messages/"
                let withKey = try await EventStreamClient.open(base, path, token: secret)
                let withToken = try await EventStreamClient.open(base, path, token: session.access)
                #expect(withKey.status == .ok && withToken.status == .ok)
                #expect(try await t.send(.DELETE, "/api/keys/\(try #require(key["id"] as? String))/", token: session.access).status == .noContent)
                let events = try await withKey.waitFor("the key's stream to be told") { $0.contains { $0.type == "error" } }
                #expect(events.last?.json["status"] as? Int == 401)
                try await withKey.waitForEnd()
                #expect(!withToken.hasEnded && !withToken.events.contains { $0.type == "error" }, "the token's stream goes on")
                withToken.close()
            }
        }
    }
}
