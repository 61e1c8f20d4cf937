@testable import App
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
