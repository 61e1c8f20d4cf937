@testable import App
import Fluent
import Foundation
import Testing
import VaporTesting

/// Two discovered providers, `corp` and `partner`, and an app configured for both (plus `settings`).
func withTwoProviders(
    _ database: TestDatabase = .sqlite, settings: [String: String] = [:],
    _ body: (TestApp, FakeOpenIDProvider, FakeOpenIDProvider) async throws -> Void
) async throws {
    let corp = try await FakeOpenIDProvider.start(issuerIsBase: true, clientID: "corp-client")
    let partner = try await FakeOpenIDProvider.start(issuerIsBase: true, clientID: "partner-client")
    var environment = corp.oidcSettings("corp").merging(partner.oidcSettings("partner")) { $1 }
    environment["OIDC_PROVIDERS"] = "corp,partner"
    environment["OIDC_CORP_DISPLAY_NAME"] = "Corp SSO"
    do {
        try await withTestApp(database, settings: environment.merging(settings) { $1 }) { t in try await body(t, corp, partner) }
    } catch {
        await corp.shutdown()
        await partner.shutdown()
        throw error
    }
    await corp.shutdown()
    await partner.shutdown()
}

extension TestApp {
    /// The browser's journey through `/auth/oidc/<name>/`: begin, consent at the provider, come back.
    /// Answers the callback's response.
    func signIn(at provider: FakeOpenIDProvider, as name: String, json: Bool = false,
                sourceLocation: SourceLocation = #_sourceLocation) async throws -> TestingHTTPResponse {
        let begun = try await send(.GET, "/auth/oidc/\(name)/login/")
        try #require(begun.status == .found, "login answered \(begun.status): \(begun.body.string)", sourceLocation: sourceLocation)
        let location = try #require(begun.headers.first(name: .location), sourceLocation: sourceLocation)
        try #require(location.hasPrefix(provider.baseURL), "sent to \(location)", sourceLocation: sourceLocation)
        let cookie = try #require(begun.headers.first(name: .setCookie)?.split(separator: ";").first.map(String.init),
                                  sourceLocation: sourceLocation)
        return try await send(.GET, try provider.authorize(location),
                              headers: ["Cookie": cookie, "Accept": json ? "application/json" : "text/html"])
    }

    /// Redeems a callback's one-time code at `POST /auth/exchange/`.
    func exchange(_ callback: TestingHTTPResponse, sourceLocation: SourceLocation = #_sourceLocation) async throws -> SessionBody {
        let location = callback.headers.first(name: .location)
        let code = try #require(fragment(location)["code"], "no code in \(location ?? "nil")", sourceLocation: sourceLocation)
        let response = try await send(.POST, "/auth/exchange/", json: ["code": code], sourceLocation: sourceLocation)
        try #require(response.status == .ok, "exchange answered \(response.status): \(response.body.string)", sourceLocation: sourceLocation)
        return try response.decoded(SessionBody.self)
    }

    /// The error code a sign-in at `provider` ended with.
    func signInError(at provider: FakeOpenIDProvider, as name: String) async throws -> String? {
        errorCode(of: try await signIn(at: provider, as: name))
    }

    /// The error code a callback sent the browser back with.
    func errorCode(of callback: TestingHTTPResponse) -> String? {
        fragment(callback.headers.first(name: .location))["error"]
    }
}

@Suite("Any OpenID provider")
struct OpenIDProviderTests {
    @Test("two providers at once: each discovered, listed, and signing in its own users, identities apart even with the same subject",
          arguments: TestDatabase.all)
    func twoProviders(_ database: TestDatabase) async throws {
        try await withTwoProviders(database, settings: ["PUBLIC_URL": "https://chat.example.com"]) { t, corp, partner in
            let providers = try await t.send(.GET, "/auth/providers/")
            let listed = try #require(try providers.jsonObject()["oidc"] as? [[String: Any]])
            #expect(listed.map { $0["name"] as? String } == ["corp", "partner"])
            #expect(listed.first?["display_name"] as? String == "Corp SSO")
            #expect(listed.last?["display_name"] as? String == "Partner")
            #expect(listed.first?["login_url"] as? String == "https://chat.example.com/auth/oidc/corp/login/")
            #expect(try providers.jsonObject()["password"] as? Bool == true)

            let begun = try await t.send(.GET, "/auth/oidc/corp/login/")
            let location = try #require(begun.headers.first(name: .location))
            #expect(location.hasPrefix(corp.baseURL + "/authorize?"), "the discovered authorization endpoint")
            let query = Dictionary(uniqueKeysWithValues: (URLComponents(string: location)?.queryItems ?? []).map { ($0.name, $0.value ?? "") })
            #expect(query["client_id"] == "corp-client")
            #expect(query["scope"] == "openid email profile")
            #expect(query["code_challenge_method"] == "S256")
            #expect(query["prompt"] == nil, "Google's select_account is Google's")
            let cookie = try #require(begun.headers.first(name: .setCookie))
            #expect(cookie.hasPrefix("chat_oidc_login=") && cookie.contains("Path=/auth/oidc/corp/") && cookie.contains("HttpOnly"))

            // The same subject at both providers: two people, two accounts.
            corp.setIdentity { $0.subject = "42"; $0.email = "ada@corp.example" }
            partner.setIdentity { $0.subject = "42"; $0.email = "ada@partner.example" }
            let atCorp = try await t.exchange(try await t.signIn(at: corp, as: "corp"))
            let atPartner = try await t.exchange(try await t.signIn(at: partner, as: "partner"))
            #expect(atCorp.user.email == "ada@corp.example")
            #expect(atPartner.user.email == "ada@partner.example")
            #expect(atCorp.user.id != atPartner.user.id)
            let identities = try await Identity.query(on: t.db).sort(\.$provider).all()
            #expect(identities.map(\.provider) == ["corp", "partner"])

            // Signing in again finds the same account; the email it now has is recorded.
            corp.setIdentity { $0.email = "ada.lovelace@corp.example" }
            let again = try await t.exchange(try await t.signIn(at: corp, as: "corp"))
            #expect(again.user.id == atCorp.user.id)
            #expect(try await Identity.query(on: t.db).filter(\.$provider == "corp").first()?.email == "ada.lovelace@corp.example")
            #expect(corp.discoveryFetches == 1, "discovered once, at start-up")

            // A client that asks for JSON gets the session itself.
            let json = try await t.signIn(at: partner, as: "partner", json: true)
            #expect(json.status == .ok)
            #expect(try json.decoded(SessionBody.self).user.id == atPartner.user.id)
        }
    }

    @Test("a state begun at one provider is refused at another; unknown names and google under /auth/oidc/ are 404")
    func statesStayWithTheirProvider() async throws {
        try await withTwoProviders { t, corp, _ in
            let begun = try await t.send(.GET, "/auth/oidc/corp/login/")
            let location = try #require(begun.headers.first(name: .location))
            let cookie = try #require(begun.headers.first(name: .setCookie)?.split(separator: ";").first.map(String.init))
            let callback = try corp.authorize(location).replacingOccurrences(of: "/auth/oidc/corp/", with: "/auth/oidc/partner/")
            let refused = try await t.send(.GET, callback, headers: ["Cookie": cookie, "Accept": "application/json"])
            #expect(refused.status == .badRequest)
            #expect(try refused.problem().title == "Invalid sign-in state")
            #expect(try await t.userCount() == 0)
            for path in ["/auth/oidc/nobody/login/", "/auth/oidc/google/login/", "/auth/oidc/CORP/login/", "/auth/oidc/corp/nothing/"] {
                let response = try await t.send(.GET, path)
                #expect(response.status == .notFound, "\(path)")
            }
        }
    }

    @Test("staff from a groups claim, given and taken away at each sign-in; a custom claim name; superusers keep theirs",
          arguments: TestDatabase.all)
    func groups(_ database: TestDatabase) async throws {
        let settings = ["OIDC_CORP_STAFF_GROUPS": "chat-admins, ops", "OIDC_PARTNER_STAFF_GROUPS": "admins", "OIDC_PARTNER_GROUPS_CLAIM": "roles"]
        try await withTwoProviders(database, settings: settings) { t, corp, partner in
            corp.setIdentity { $0.extraClaims = ["groups": ["staff", "ops"]] }
            let first = try await t.exchange(try await t.signIn(at: corp, as: "corp"))
            #expect(first.user.is_staff)

            corp.setIdentity { $0.extraClaims = ["groups": ["staff"]] }
            let second = try await t.exchange(try await t.signIn(at: corp, as: "corp"))
            #expect(!second.user.is_staff, "re-evaluated: no longer in a staff group")
            #expect(try await User.find(email: "ada@example.com", on: t.db)?.isStaff == false)

            // `groups` means nothing to a provider whose claim is `roles`; a single string counts as one group.
            partner.setIdentity { $0.email = "grace@partner.example"; $0.extraClaims = ["groups": ["admins"]] }
            #expect(try await t.exchange(try await t.signIn(at: partner, as: "partner")).user.is_staff == false)
            partner.setIdentity { $0.extraClaims = ["roles": ["admins"]] }
            #expect(try await t.exchange(try await t.signIn(at: partner, as: "partner")).user.is_staff == true)

            let owner = try #require(try await User.find(email: "ada@example.com", on: t.db))
            owner.isSuperuser = true
            owner.isStaff = true
            try await owner.save(on: t.db)
            corp.setIdentity { $0.extraClaims = [:] }
            #expect(try await t.exchange(try await t.signIn(at: corp, as: "corp")).user.is_staff, "a superuser's staff status is the operator's")
        }
    }

    @Test("without STAFF_GROUPS the admin's staff status is left alone")
    func noStaffGroups() async throws {
        try await withTwoProviders { t, corp, _ in
            corp.setIdentity { $0.extraClaims = ["groups": ["admins"]] }
            let session = try await t.exchange(try await t.signIn(at: corp, as: "corp"))
            #expect(!session.user.is_staff)
            let user = try #require(try await User.find(email: "ada@example.com", on: t.db))
            user.isStaff = true
            try await user.save(on: t.db)
            #expect(try await t.exchange(try await t.signIn(at: corp, as: "corp")).user.is_staff)
        }
    }

    @Test("an email outside the allowed domains is refused with domain_not_allowed and nothing is stored", arguments: TestDatabase.all)
    func domains(_ database: TestDatabase) async throws {
        try await withTwoProviders(database, settings: ["OIDC_CORP_ALLOWED_DOMAINS": "corp.example, Subsidiary.example"]) { t, corp, _ in
            for email in ["eve@elsewhere.example", "eve@corp.example.evil.example", "eve@notcorp.example"] {
                corp.setIdentity { $0.email = email; $0.subject = email }
                let refused = try await t.signIn(at: corp, as: "corp")
                #expect(t.errorCode(of: refused) == "domain_not_allowed", "\(email)")
            }
            #expect(try await t.userCount() == 0)
            #expect(try await Identity.query(on: t.db).count() == 0)
            // An allowed domain the provider says it has not verified proves nothing.
            corp.setIdentity { $0.email = "eve@corp.example"; $0.subject = "eve"; $0.emailVerified = false }
            #expect(try await t.signInError(at: corp, as: "corp") == "domain_not_allowed")
            #expect(try await t.userCount() == 0)
            // A provider that says nothing about it (as Entra ID) vouches for the addresses it manages.
            corp.setIdentity { $0.email = "Ada@SUBSIDIARY.example"; $0.subject = "ada"; $0.omitEmailVerified = true }
            #expect(try await t.exchange(try await t.signIn(at: corp, as: "corp")).user.email == "ada@subsidiary.example")
        }
    }

    @Test("an existing account is joined by email only where the operator allows it, the email is verified and the account is not an unproven password account; else account_exists",
          arguments: TestDatabase.all)
    func linkingByEmail(_ database: TestDatabase) async throws {
        try await withTwoProviders(database, settings: ["OIDC_PARTNER_LINK_BY_EMAIL": "true"]) { t, corp, partner in
            // An account the operator made (its email vouched for), with a chat.
            let owner = try await t.services.accounts.createUser(email: "ada@example.com", password: testPassword, emailVerified: true, on: t.db)
            let existing = try await t.login(email: owner.email).decoded(SessionBody.self)
            let chat = try await t.createChat(token: existing.access, title: "Mine")

            // corp may not join accounts at all, verified or not.
            #expect(try await t.signInError(at: corp, as: "corp") == "account_exists")
            // partner may, but not on an email it has not verified (absent counts as not).
            partner.setIdentity { $0.emailVerified = false }
            #expect(try await t.signInError(at: partner, as: "partner") == "account_exists")
            partner.setIdentity { $0.omitEmailVerified = true }
            #expect(try await t.signInError(at: partner, as: "partner") == "account_exists")
            #expect(try await Identity.query(on: t.db).count() == 0)
            #expect(try await t.userCount() == 1)
            #expect(try await t.login(email: "ada@example.com").status == .ok, "the account is untouched")

            partner.setIdentity { $0.omitEmailVerified = false; $0.emailVerified = true }
            let joined = try await t.exchange(try await t.signIn(at: partner, as: "partner"))
            #expect(joined.user.id == existing.user.id)
            #expect(joined.notices == nil || joined.notices == [], "no password removed: only Google's proof does that")
            #expect(try await t.chat(chat.id, token: joined.access)["title"] as? String == "Mine")
            #expect(try await t.login(email: "ada@example.com").status == .ok, "the password stays")
        }
    }

    @Test("a password sign-up nobody proved is not joined even by a provider allowed to link: whoever set the password keeps nothing of the owner's")
    func squattedAccountNotJoined() async throws {
        try await withTwoProviders(settings: ["OIDC_PARTNER_LINK_BY_EMAIL": "true"]) { t, _, partner in
            let squatter = try await t.register(email: "ada@example.com")
            #expect(try await t.signInError(at: partner, as: "partner") == "account_exists")
            #expect(try await Identity.query(on: t.db).count() == 0)
            #expect(try await t.send(.GET, "/auth/me/", token: squatter.access).status == .ok, "nothing changed for the account")
        }
    }

    @Test("an account a provider made without being trusted to link is unproven, and Google's proof does not join it later")
    func unprovenNewAccount() async throws {
        let google = try await FakeOpenIDProvider.start()
        let corp = try await FakeOpenIDProvider.start(issuerIsBase: true, clientID: "corp-client")
        let partner = try await FakeOpenIDProvider.start(issuerIsBase: true, clientID: "partner-client")
        var settings = google.settings.merging(corp.oidcSettings("corp")) { $1 }.merging(partner.oidcSettings("partner")) { $1 }
        settings["OIDC_PROVIDERS"] = "corp,partner"
        settings["OIDC_PARTNER_LINK_BY_EMAIL"] = "true"
        let all = [google, corp, partner]
        do {
            try await withTestApp(.sqlite, settings: settings) { t in
                // corp says the email is verified, but it is not trusted to join accounts by it.
                let made = try await t.exchange(try await t.signIn(at: corp, as: "corp"))
                #expect(try await User.find(email: "ada@example.com", on: t.db)?.emailVerifiedAt == nil)
                // Google proves ada@example.com belongs to someone: not necessarily the one corp let in.
                #expect(t.errorCode(of: try await t.signInWithGoogle(google)) == "account_exists")
                #expect(try await t.userCount() == 1)
                #expect(try await t.exchange(try await t.signIn(at: corp, as: "corp")).user.id == made.user.id)

                // partner is trusted to link: its verified proof makes an account proven.
                partner.setIdentity { $0.email = "grace@example.com" }
                _ = try await t.exchange(try await t.signIn(at: partner, as: "partner"))
                #expect(try await User.find(email: "grace@example.com", on: t.db)?.emailVerifiedAt != nil)
            }
        } catch {
            for provider in all { await provider.shutdown() }
            throw error
        }
        for provider in all { await provider.shutdown() }
    }

    @Test("ID tokens for another client, of another issuer, or badly signed are refused, at each provider")
    func badTokens() async throws {
        try await withTwoProviders { t, corp, partner in
            let wrongs: [(String, @Sendable (inout FakeOpenIDProvider.Identity) -> Void)] = [
                ("another client", { $0.audience = "partner-client" }),
                ("another issuer", { $0.issuer = partner.baseURL }),
                ("a forged signature", { $0.forgeSignature = true }),
                ("no email", { $0.email = "" }),
                ("several audiences, no authorized party", { $0.otherAudiences = ["partner-client"] }),
                ("several audiences, another authorized party", { $0.otherAudiences = ["partner-client"]; $0.authorizedParty = "partner-client" }),
            ]
            for (wrong, change) in wrongs {
                corp.setIdentity { $0 = FakeOpenIDProvider.Identity(); $0.issuer = corp.baseURL; $0.audience = "corp-client"; change(&$0) }
                let code = try await t.signInError(at: corp, as: "corp")
                #expect(code == "invalid_token", "\(wrong)")
            }
            #expect(try await t.userCount() == 0)
            corp.setIdentity { $0 = FakeOpenIDProvider.Identity(); $0.issuer = corp.baseURL; $0.audience = "corp-client"
                $0.otherAudiences = ["partner-client"]; $0.authorizedParty = "corp-client" }
            _ = try await t.exchange(try await t.signIn(at: corp, as: "corp"))
        }
    }
}
