@testable import App
import Fluent
import Foundation
import Testing
import VaporTesting

@Suite("Access and refresh tokens")
struct TokenTests {
    @Test("tokens are HS256 with exactly the contract's claims and lifetimes", arguments: TestDatabase.all)
    func claims(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["ACCESS_TOKEN_LIFETIME": "10m", "REFRESH_TOKEN_LIFETIME": "2d"]) { t in
            let session = try await t.register(email: "claims@example.com")

            let access = try jwtParts(session.access)
            #expect(access.header["alg"] as? String == "HS256")
            #expect(Set(access.payload.keys) == ["user_id", "email", "role", "type", "jti", "iat", "exp"])
            #expect(access.payload["user_id"] as? String == session.user.id)
            #expect(access.payload["email"] as? String == "claims@example.com")
            #expect(access.payload["role"] as? String == "basic")
            #expect(access.payload["type"] as? String == "access")
            let iat = try #require(access.payload["iat"] as? Int)
            let exp = try #require(access.payload["exp"] as? Int)
            #expect(exp - iat == 600)
            #expect(session.expires_in == 600)

            let refresh = try jwtParts(session.refresh)
            #expect(refresh.payload["type"] as? String == "refresh")
            let refreshLifetime = try #require(refresh.payload["exp"] as? Int) - (try #require(refresh.payload["iat"] as? Int))
            #expect(refreshLifetime == 2 * 86_400)
            #expect(refresh.payload["jti"] as? String != access.payload["jti"] as? String)
        }
    }

    @Test("a missing token is 401 with WWW-Authenticate: Bearer", arguments: TestDatabase.all)
    func missingToken(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let response = try await t.send(.GET, "/auth/me/")
            #expect(response.status == .unauthorized)
            #expect(response.headers.first(name: .wwwAuthenticate) == "Bearer")
            _ = try response.problem()

            let basic = try await t.send(.GET, "/auth/me/", headers: ["Authorization": "Basic dXNlcjpwYXNz"])
            #expect(basic.status == .unauthorized)
        }
    }

    @Test("forged, unsigned, expired and wrong-kind tokens are refused", arguments: TestDatabase.all)
    func refusedTokens(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let user = try #require(try await User.find(UUID(uuidString: session.user.id), on: t.db))

            let otherKey = await TokenSigner(secretKey: String(repeating: "k", count: 40), clock: t.clock,
                                             accessLifetime: .seconds(900), refreshLifetime: .seconds(3600))
            let wrongKey = try await otherKey.sign(.access, for: user, jti: UUID()).token

            let parts = session.access.split(separator: ".")
            let noneHeader = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64EncodedString()
                .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            let unsigned = "\(noneHeader).\(parts[1])."
            let tampered = "\(parts[0]).\(parts[1].dropLast(2))xy.\(parts[2])"

            for token in [wrongKey, unsigned, tampered, "not-a-jwt", session.refresh] {
                let response = try await t.send(.GET, "/auth/me/", token: token)
                #expect(response.status == .unauthorized, "\(token)")
                #expect(response.headers.first(name: .wwwAuthenticate)?.hasPrefix("Bearer") == true)
                _ = try response.problem()
            }

            let accessAsRefresh = try await t.send(.POST, "/auth/refresh/", json: ["refresh": session.access])
            #expect(accessAsRefresh.status == .unauthorized)

            t.clock.advance(by: 901)
            let expired = try await t.send(.GET, "/auth/me/", token: session.access)
            #expect(expired.status == .unauthorized)
            #expect(try expired.problem().detail?.contains("expired") == true)
        }
    }

    @Test("a deactivated user's access token stops working", arguments: TestDatabase.all)
    func deactivatedUser(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let user = try #require(try await User.find(UUID(uuidString: session.user.id), on: t.db))
            user.isActive = false
            try await user.save(on: t.db)

            let response = try await t.send(.GET, "/auth/me/", token: session.access)
            #expect(response.status == .unauthorized)
            let refreshed = try await t.send(.POST, "/auth/refresh/", json: ["refresh": session.refresh])
            #expect(refreshed.status == .unauthorized)
        }
    }
}

@Suite("Accounts kept in memory between requests")
struct SignedInUsersTests {
    /// Signs `session`'s user in on a request, so that the account is kept in memory.
    private func use(_ session: SessionBody, on t: TestApp, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        #expect(try await t.send(.GET, "/auth/me/", token: session.access).status == .ok, sourceLocation: sourceLocation)
    }

    @Test("a token already in use follows its account at once: deactivated, signed out everywhere, edited, deleted",
          arguments: TestDatabase.all)
    func changesTakeEffectAtOnce(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let accounts = try t.services.accounts
            let admin = try await User.fixture(email: uniqueEmail("admin"), isStaff: true, isSuperuser: true, on: t.db)

            let deactivated = try await t.register()
            try await use(deactivated, on: t)
            let member = try #require(try await User.find(UUID(uuidString: deactivated.user.id), on: t.db))
            _ = try await accounts.update(member, with: .init(name: "x", role: .basic, isStaff: false, isActive: false, isSuperuser: false),
                                          by: admin, on: t.db)
            #expect(try await t.send(.GET, "/auth/me/", token: deactivated.access).status == .unauthorized)

            let signedOut = try await t.register()
            try await use(signedOut, on: t)
            let other = try #require(try await User.find(UUID(uuidString: signedOut.user.id), on: t.db))
            try await accounts.signOutEverywhere(other, on: t.db)
            let refused = try await t.send(.GET, "/api/chat/", token: signedOut.access)
            #expect(refused.status == .unauthorized)
            #expect(try refused.problem().detail == "This session has been signed out.")

            let promoted = try await t.register()
            try await use(promoted, on: t)
            let third = try #require(try await User.find(UUID(uuidString: promoted.user.id), on: t.db))
            _ = try await accounts.update(third, with: .init(name: "Third", role: .premium, isStaff: false, isActive: true, isSuperuser: false),
                                          by: admin, on: t.db)
            let me = try await t.send(.GET, "/auth/me/", token: promoted.access).jsonObject()
            #expect(me["role"] as? String == "premium" && me["name"] as? String == "Third", "an edit shows at once")

            let deleted = try await t.register()
            try await use(deleted, on: t)
            let browser = AdminClient(t)
            #expect(try await browser.signIn(admin.email).status == .seeOther)
            try await browser.get("/admin/users/\(deleted.user.id)/delete/")
            #expect(try await browser.post("/admin/users/\(deleted.user.id)/delete/").status == .seeOther)
            #expect(try await t.send(.GET, "/auth/me/", token: deleted.access).status == .unauthorized)
        }
    }

    @Test("memory follows the accounts and tokens in use lately, not every one seen since the start")
    func staleEntriesAreDropped() async throws {
        try await withTestApp(.sqlite) { t in
            let first = try await t.register()
            let second = try await t.register()
            try await use(first, on: t)
            try await use(second, on: t)
            #expect(try t.services.users.count == 2)
            t.clock.advance(by: SignedInUsers.maxAge)
            let third = try await t.register()
            try await use(third, on: t)
            #expect(try t.services.users.count == 1, "the two accounts not seen for maxAge were dropped")

            // Verified tokens go once expired (checked at most every sweepInterval).
            let tokens = VerifiedTokens()
            let claims = try await t.services.tokens.verify(first.access, as: .access)
            tokens.keep("a", claims, now: t.clock.now())
            tokens.keep("b", claims, now: t.clock.now())
            #expect(tokens.count == 2)
            tokens.keep("c", claims, now: claims.exp.value.addingTimeInterval(VerifiedTokens.sweepInterval))
            #expect(tokens.count == 1, "expired tokens were dropped")
        }
    }

    @Test("an account changed behind the server's back (a command, the database itself) is read again within a bounded time")
    func changedElsewhereIsReadAgain() async throws {
        try await withTestApp(.sqlite) { t in
            let session = try await t.register()
            try await use(session, on: t)
            #expect(try t.services.users.count == 1)
            // Straight in the database, as `chat-server` commands on SQLite do: no instance hears of it.
            let id = try #require(UUID(uuidString: session.user.id))
            try await User.query(on: t.db).filter(\User.$id == id).set(\.$isActive, to: false).update()
            #expect(try await t.send(.GET, "/auth/me/", token: session.access).status == .ok, "kept: no query per request")
            t.clock.advance(by: SignedInUsers.maxAge)
            #expect(try await t.send(.GET, "/auth/me/", token: session.access).status == .unauthorized, "read again")
        }
    }
}
