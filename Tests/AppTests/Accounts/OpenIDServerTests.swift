@testable import App
import Fluent
import Foundation
import SQLKit
import Testing
import VaporTesting

@Suite("Any OpenID provider: discovery, the admin, and how the server is opened")
struct OpenIDServerTests {
    @Test("POST /auth/exchange/: a code missing, not a string, over 128 bytes, unknown, or spent is 400 on `code`, and signs nobody in")
    func exchangeRefusals() async throws {
        try await withTwoProviders { t, corp, _ in
            let callback = try await t.signIn(at: corp, as: "corp")
            let code = try #require(fragment(callback.headers.first(name: .location))["code"])
            let bad: [[String: Any]] = [[:], ["code": 42], ["code": NSNull()], ["code": String(repeating: "a", count: 129)],
                                        ["code": String(repeating: "é", count: 65)], ["code": "not-a-code"]]
            for body in bad {
                let response = try await t.send(.POST, "/auth/exchange/", json: body)
                #expect(response.status == .badRequest, "\(body)")
                #expect(try response.problem().errors?["code"] != nil, "\(body)")
            }
            #expect(try await t.send(.POST, "/auth/exchange/", json: ["code": code]).status == .ok)
            #expect(try await t.send(.POST, "/auth/exchange/", json: ["code": code]).status == .badRequest, "spent")
            #expect(try await t.send(.POST, "/auth/google/exchange/", json: ["code": code]).status == .badRequest, "spent at either path")
        }
    }

    @Test("the admin's user page lists each identity with its provider, escaped; the delete page counts them")
    func adminShowsIdentities() async throws {
        try await withTwoProviders { t, corp, _ in
            corp.setIdentity { $0.subject = "<script>1</script>"; $0.email = "ada@corp.example" }
            let session = try await t.exchange(try await t.signIn(at: corp, as: "corp"))
            let staff = try await User.fixture(isStaff: true, on: t.db)
            let admin = AdminClient(t)
            _ = try await admin.signIn(staff.email)
            let page = try await admin.get("/admin/users/\(session.user.id)/")
            #expect(page.status == .ok)
            #expect(page.body.string.contains("corp: ada@corp.example"))
            #expect(page.body.string.contains("&lt;script&gt;1&lt;/script&gt;"))
            #expect(!page.body.string.contains("<script>1</script>"))
            let delete = try await admin.get("/admin/users/\(session.user.id)/delete/")
            #expect(delete.body.string.contains("1 sign-in identit"))
        }
    }

    @Test("a provider whose discovery is missing, lies about its issuer or never answers is unavailable, says why, and the others work")
    func brokenDiscovery() async throws {
        let corp = try await FakeOpenIDProvider.start(issuerIsBase: true, clientID: "corp-client")
        let missing = try await FakeOpenIDProvider.start(issuerIsBase: true, discovery: .missing)
        let liar = try await FakeOpenIDProvider.start(issuerIsBase: true, discovery: .lyingIssuer)
        let slow = try await FakeOpenIDProvider.start(issuerIsBase: true, discovery: .hanging)
        let all = [corp, missing, liar, slow]
        var settings = ["OIDC_PROVIDERS": "corp,missing,liar,slow"]
        for (name, provider) in zip(["corp", "missing", "liar", "slow"], all) { settings.merge(provider.oidcSettings(name)) { $1 } }
        do {
            try await withTestApp(.sqlite, settings: settings) { t in
                let signIns = try t.services.signIns
                func failure(_ name: String) async -> SignInError? { await signIns.generic(name)?.endpoints.failure }
                try await waitUntil("missing and liar found wanting") {
                    let (missing, liar) = (await failure("missing"), await failure("liar"))
                    return missing != nil && liar != nil
                }
                #expect(await failure("missing")?.problem.detail?.contains("answered 404") == true)
                #expect(await failure("liar")?.problem.detail?.contains("names the issuer 'https://elsewhere.example'") == true)

                // The slow one holds nobody up: corp signs in while its discovery hangs.
                #expect(try await t.exchange(try await t.signIn(at: corp, as: "corp")).user.email == "ada@example.com")
                for name in ["missing", "liar"] {
                    let login = try await t.send(.GET, "/auth/oidc/\(name)/login/")
                    #expect(login.status == .found)
                    #expect(t.errorCode(of: login) == "provider_unavailable", "\(name): back to the app with the reason")
                    #expect(login.headers.first(name: .setCookie) == nil)
                }
                #expect(try await SignInAttempt.query(on: t.db).count() == 0, "nothing begun")

                // Asked again only after a while; then the mended provider works.
                missing.setDiscovery(.served)
                let fetches = missing.discoveryFetches
                _ = try await t.send(.GET, "/auth/oidc/missing/login/")
                #expect(missing.discoveryFetches == fetches, "not hammered")
                t.clock.advance(by: OpenIDEndpointSource.retryInterval + 1)
                missing.setIdentity { $0.email = "grace@example.com" }
                #expect(try await t.exchange(try await t.signIn(at: missing, as: "missing")).user.email == "grace@example.com")
                slow.releaseHanging()
            }
        } catch {
            for provider in all { await provider.shutdown() }
            throw error
        }
        for provider in all { await provider.shutdown() }
    }

    @Test("SIGNUP=closed refuses sign-ups (403 signup_closed, nothing stored) while providers still make accounts")
    func signupClosed() async throws {
        try await withTwoProviders(settings: ["SIGNUP": "closed"]) { t, corp, _ in
            let refused = try await t.send(.POST, "/auth/register/", json: ["email": "new@example.com", "password": testPassword])
            #expect(refused.status == .forbidden)
            #expect(try refused.jsonObject()["code"] as? String == "signup_closed")
            #expect(try await t.userCount() == 0)
            #expect(try await t.send(.GET, "/auth/providers/").jsonObject()["signup"] as? Bool == false)
            _ = try await t.exchange(try await t.signIn(at: corp, as: "corp"))
            #expect(try await t.userCount() == 1)
            #expect(try await t.login(email: "nobody@example.com").status == .unauthorized, "password sign-in stays")
        }
    }

    @Test("PASSWORD_LOGIN=false turns password sign-in and sign-up off (403 password_login_disabled); it needs a provider")
    func passwordLoginOff() async throws {
        try await withTwoProviders(settings: ["PASSWORD_LOGIN": "false"]) { t, corp, _ in
            let user = try await t.services.accounts.createUser(email: "old@example.com", password: testPassword, on: t.db)
            let login = try await t.login(email: user.email)
            #expect(login.status == .forbidden)
            #expect(try login.jsonObject()["code"] as? String == "password_login_disabled")
            let register = try await t.send(.POST, "/auth/register/", json: ["email": "new@example.com", "password": testPassword])
            #expect(register.status == .forbidden)
            let providers = try await t.send(.GET, "/auth/providers/").jsonObject()
            #expect(providers["password"] as? Bool == false)
            #expect(providers["signup"] as? Bool == false)
            _ = try await t.exchange(try await t.signIn(at: corp, as: "corp"))
        }
        #expect(throws: SettingsError.self) {
            try Settings(environment: TestSettings.environment(.sqlite).merging(["PASSWORD_LOGIN": "false"]) { $1 })
        }
    }

    @Test("OIDC_PROVIDERS: names of letters, digits and _, google reserved, none twice, each with issuer, client and secret")
    func settings() throws {
        let base = TestSettings.environment(.sqlite)
        let complete = ["OIDC_CORP_ISSUER": "https://id.corp.example/realms/main", "OIDC_CORP_CLIENT_ID": "c", "OIDC_CORP_CLIENT_SECRET": "s"]
        func settings(_ extra: [String: String]) throws -> Settings {
            try Settings(environment: base.merging(complete) { $1 }.merging(extra) { $1 })
        }
        let read = try settings(["OIDC_PROVIDERS": "Corp", "PUBLIC_URL": "https://chat.example.com"])
        let corp = try #require(read.openID.first)
        #expect(corp.name == "corp")
        #expect(corp.redirectURI == "https://chat.example.com/auth/oidc/corp/callback/", "PUBLIC_URL's callback by default")
        #expect(corp.issuer == "https://id.corp.example/realms/main")
        #expect(!corp.linkByEmail)
        for bad in ["google", "corp,corp", "co-rp", "a/b", String(repeating: "a", count: 33), "ädmin"] {
            #expect(throws: SettingsError.self, "\(bad)") { try settings(["OIDC_PROVIDERS": bad]) }
        }
        for missing in ["OIDC_CORP_ISSUER", "OIDC_CORP_CLIENT_ID", "OIDC_CORP_CLIENT_SECRET"] {
            var environment = base.merging(complete) { $1 }
            environment[missing] = nil
            environment["OIDC_PROVIDERS"] = "corp"
            #expect(throws: SettingsError.self, "\(missing)") { try Settings(environment: environment) }
        }
        #expect(throws: SettingsError.self) { try settings(["OIDC_PROVIDERS": "corp", "OIDC_CORP_SCOPES": "email profile"]) }
        #expect(throws: SettingsError.self) { try settings(["OIDC_PROVIDERS": "corp", "OIDC_CORP_ISSUER": "ftp://id.example"]) }
        #expect(throws: SettingsError.self) { try settings(["SIGNUP": "maybe"]) }
        // Plain http only on this machine or in DEBUG: on the way, anyone could rewrite the keys.
        #expect(throws: SettingsError.self) { try settings(["OIDC_PROVIDERS": "corp", "OIDC_CORP_ISSUER": "http://id.corp.example"]) }
        #expect(try settings(["OIDC_PROVIDERS": "corp", "OIDC_CORP_ISSUER": "http://127.0.0.1:8080/realms/x"]).openID.count == 1)
        #expect(try settings(["OIDC_PROVIDERS": "corp", "OIDC_CORP_ISSUER": "http://id.corp.example", "DEBUG": "true"]).openID.count == 1)
    }

    @Test("linked Google accounts of an older database become identities of google", arguments: TestDatabase.all)
    func migration(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register(email: "ada@example.com")
            try await GeneralizeSignIn().revert(on: t.db)
            try await t.db.sql().raw("""
                INSERT INTO google_accounts (id, user_id, subject, email, created_at, updated_at)
                VALUES (\(bind: UUID()), \(bind: try #require(UUID(uuidString: session.user.id))), '1234', 'ada@example.com', NULL, NULL)
                """).run()
            try await GeneralizeSignIn().prepare(on: t.db)
            let identity = try #require(try await Identity.query(on: t.db).first())
            #expect(identity.provider == "google")
            #expect(identity.subject == "1234")
            #expect(identity.$user.id.uuidString.lowercased() == session.user.id)
        }
    }
}
