@testable import App
import Fluent
import Foundation
import Testing
import VaporTesting

/// Runs `body` with a fake Google and an app configured for it.
private func withGoogle(
    _ database: TestDatabase = .sqlite, settings: [String: String] = [:],
    _ body: (TestApp, FakeOpenIDProvider) async throws -> Void
) async throws {
    let google = try await FakeOpenIDProvider.start()
    do {
        try await withTestApp(database, settings: google.settings.merging(settings) { $1 }) { t in
            try await body(t, google)
        }
    } catch {
        await google.shutdown()
        throw error
    }
    await google.shutdown()
}

extension TestApp {
    /// Begins a sign-in: the redirect to Google, and the cookie the browser got.
    func beginGoogleSignIn(query: String = "") async throws -> (location: String, cookie: String) {
        let response = try await send(.GET, "/auth/google/login/" + query)
        try #require(response.status == .found, "login answered \(response.status): \(response.body.string)")
        let location = try #require(response.headers.first(name: .location))
        let setCookie = try #require(response.headers.first(name: .setCookie))
        let cookie = try #require(setCookie.split(separator: ";").first.map(String.init))
        return (location, cookie)
    }

    /// The whole browser journey: begin, consent at Google, come back. Answers the callback's response.
    func signInWithGoogle(_ google: FakeOpenIDProvider, json: Bool = false) async throws -> TestingHTTPResponse {
        let (location, cookie) = try await beginGoogleSignIn()
        let callback = try google.authorize(location)
        return try await send(.GET, callback, headers: ["Cookie": cookie, "Accept": json ? "application/json" : "text/html"])
    }
}

extension TestApp {
    /// Redeems the one-time code of a callback's redirect at `POST /auth/google/exchange/`.
    func exchangeGoogleCode(_ callback: TestingHTTPResponse, sourceLocation: SourceLocation = #_sourceLocation) async throws -> SessionBody {
        let code = try #require(fragment(callback.headers.first(name: .location))["code"], sourceLocation: sourceLocation)
        let response = try await send(.POST, "/auth/google/exchange/", json: ["code": code], sourceLocation: sourceLocation)
        try #require(response.status == .ok, "exchange answered \(response.status): \(response.body.string)", sourceLocation: sourceLocation)
        return try response.decoded(SessionBody.self)
    }
}

/// The pairs in a URL's fragment.
func fragment(_ location: String?) -> [String: String] {
    guard let fragment = location?.split(separator: "#", maxSplits: 1).last else { return [:] }
    var pairs: [String: String] = [:]
    for pair in fragment.split(separator: "&") {
        let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
        if parts.count == 2 { pairs[parts[0]] = parts[1].removingPercentEncoding }
    }
    return pairs
}

@Suite("Google sign-in")
struct GoogleSignInTests {
    @Test("without GOOGLE_CLIENT_ID both routes are 404 problem+json")
    func notConfigured() async throws {
        try await withTestApp(.sqlite) { t in
            for path in ["/auth/google/login/", "/auth/google/callback/?code=x&state=y"] {
                let response = try await t.send(.GET, path)
                #expect(response.status == .notFound)
                #expect(try response.problem().title == "Google sign-in is not configured")
            }
        }
    }

    @Test("login redirects to Google with state, nonce and PKCE, bound to the browser by a cookie")
    func loginRedirect() async throws {
        try await withGoogle { t, google in
            let response = try await t.send(.GET, "/auth/google/login/")
            #expect(response.status == .found)
            let location = try #require(response.headers.first(name: .location))
            #expect(location.hasPrefix(google.baseURL + "/authorize?"))
            let query = Dictionary(uniqueKeysWithValues: (URLComponents(string: location)?.queryItems ?? []).map { ($0.name, $0.value ?? "") })
            #expect(query["client_id"] == FakeOpenIDProvider.clientID)
            #expect(query["redirect_uri"] == "http://localhost:8000/auth/google/callback/")
            #expect(query["response_type"] == "code")
            #expect(query["scope"] == "openid email profile")
            #expect(query["code_challenge_method"] == "S256")
            #expect((query["state"]?.count ?? 0) >= 43)
            #expect((query["nonce"]?.count ?? 0) >= 43)
            #expect((query["code_challenge"]?.count ?? 0) == 43)
            let cookie = try #require(response.headers.first(name: .setCookie))
            #expect(cookie.hasPrefix("chat_google_login="))
            #expect(cookie.contains("HttpOnly"))
            #expect(cookie.contains("SameSite=Lax"))
            #expect(cookie.contains("Path=/auth/google/"))
            #expect(cookie.contains("Secure"), "not in DEBUG")
        }
    }

    @Test("a new Google user is created and sent back with a one-time code, never the tokens", arguments: TestDatabase.all)
    func newUser(_ database: TestDatabase) async throws {
        try await withGoogle(database) { t, google in
            let response = try await t.signInWithGoogle(google)

            #expect(response.status == .found)
            let location = try #require(response.headers.first(name: .location))
            #expect(location.hasPrefix("/#code="), "without FRONTEND_URL in production, back to this server's web chat")
            for secret in ["access", "refresh", "eyJ"] { #expect(!location.contains(secret), "no token in the URL") }
            let session = try await t.exchangeGoogleCode(response)
            #expect(session.token_type == "Bearer")
            #expect(session.expires_in == 900)
            let me = try await t.send(.GET, "/auth/me/", token: session.access)
            let user = try me.decoded(SessionBody.UserBody.self)
            #expect(user.email == "ada@example.com")
            #expect(user.name == "Ada Lovelace")
            #expect(user.role == "basic")
            let stored = try #require(try await User.find(email: "ada@example.com", on: t.db))
            #expect(stored.passwordHash == nil, "no usable password")
            #expect(stored.emailVerifiedAt != nil)
            let link = try #require(try await Identity.query(on: t.db).first())
            #expect(link.provider == "google")
            #expect(link.subject == "1098765432101234567890")
            #expect(link.$user.id == stored.id)
            #expect(response.headers.first(name: .setCookie)?.contains("Max-Age=0") == true, "the cookie is cleared")
        }
    }

    @Test("the one-time code works once, within 60 seconds, and only as issued", arguments: TestDatabase.all)
    func oneTimeCode(_ database: TestDatabase) async throws {
        try await withGoogle(database) { t, google in
            let first = try await t.signInWithGoogle(google)
            let code = try #require(fragment(first.headers.first(name: .location))["code"])
            #expect(try await t.send(.POST, "/auth/google/exchange/", json: ["code": code]).status == .ok)
            let again = try await t.send(.POST, "/auth/google/exchange/", json: ["code": code])
            #expect(again.status == .badRequest, "single use")
            #expect(try again.problem().title == "Invalid sign-in code")

            let late = try await t.signInWithGoogle(google)
            let lateCode = try #require(fragment(late.headers.first(name: .location))["code"])
            t.clock.advance(by: 61)
            #expect(try await t.send(.POST, "/auth/google/exchange/", json: ["code": lateCode]).status == .badRequest, "expired")

            for bad in [["code": "made-up"], ["code": ""], [:], ["code": String(repeating: "x", count: 500)]] {
                let response = try await t.send(.POST, "/auth/google/exchange/", json: bad)
                #expect(response.status == .badRequest, "\(bad)")
                _ = try response.problem()
            }
            let stored = try await SignInCode.query(on: t.db).all()
            #expect(stored.allSatisfy { $0.codeHash.count == 43 && $0.codeHash != lateCode }, "only hashes are stored")
        }
    }

    @Test("a code whose account was deactivated meanwhile is refused")
    func codeForDeactivatedAccount() async throws {
        try await withGoogle { t, google in
            let response = try await t.signInWithGoogle(google)
            let user = try #require(try await User.find(email: "ada@example.com", on: t.db))
            user.isActive = false
            try await user.save(on: t.db)
            let code = try #require(fragment(response.headers.first(name: .location))["code"])
            #expect(try await t.send(.POST, "/auth/google/exchange/", json: ["code": code]).status == .badRequest)
        }
    }

    @Test("a JSON client gets the Session as JSON")
    func jsonCallback() async throws {
        try await withGoogle { t, google in
            let response = try await t.signInWithGoogle(google, json: true)
            #expect(response.status == .ok)
            let session = try response.decoded(SessionBody.self)
            #expect(session.user.email == "ada@example.com")
            #expect(session.token_type == "Bearer")
        }
    }

    @Test("a returning Google user signs in as the same user", arguments: TestDatabase.all)
    func returningUser(_ database: TestDatabase) async throws {
        try await withGoogle(database) { t, google in
            let first = try await t.exchangeGoogleCode(try await t.signInWithGoogle(google))
            google.setIdentity { $0.email = "ada.lovelace@example.com" }
            let second = try await t.exchangeGoogleCode(try await t.signInWithGoogle(google))
            #expect(first.user.id == second.user.id)
            #expect(try await t.userCount() == 1)
            #expect(try await Identity.query(on: t.db).first()?.email == "ada.lovelace@example.com")
        }
    }

    @Test("Google proving the email of a password sign-up takes the account back from whoever registered it", arguments: TestDatabase.all)
    func preRegisteredTakeover(_ database: TestDatabase) async throws {
        try await withGoogle(database) { t, google in
            // Someone registers the victim's address first, with a password, and keeps a session.
            let squatter = try await t.register(email: "Ada@Example.com")
            let chat = try await t.createChat(token: squatter.access, title: "planted")

            // The owner signs in with Google.
            let owner = try await t.exchangeGoogleCode(try await t.signInWithGoogle(google))
            #expect(owner.user.id == squatter.user.id, "the same account, now the owner's")
            #expect(owner.notices == ["password_removed"], "the owner is told")
            #expect(try await t.userCount() == 1)

            // The squatter keeps nothing: no password, no refresh token, no access token.
            #expect(try await t.login(email: "ada@example.com").status == .unauthorized)
            #expect(try await t.send(.POST, "/auth/refresh/", json: ["refresh": squatter.refresh]).status == .unauthorized)
            #expect(try await t.send(.GET, "/auth/me/", token: squatter.access).status == .unauthorized)
            #expect(try await t.send(.GET, "/api/chat/\(chat.id)/", token: squatter.access).status == .unauthorized)
            // The owner's session works.
            #expect(try await t.send(.GET, "/auth/me/", token: owner.access).status == .ok)
            let stored = try #require(try await User.find(email: "ada@example.com", on: t.db))
            #expect(stored.passwordHash == nil)
            #expect(stored.emailVerifiedAt != nil)

            // Signing in with Google again says nothing more.
            #expect(try await t.exchangeGoogleCode(try await t.signInWithGoogle(google)).notices == nil)
        }
    }

    @Test("an account whose email the operator vouched for is linked and keeps its password", arguments: TestDatabase.all)
    func vouchedAccountLinks(_ database: TestDatabase) async throws {
        try await withGoogle(database) { t, google in
            let accounts = try t.services.accounts
            let existing = try await accounts.createUser(email: "ada@example.com", password: testPassword, isStaff: true,
                                                         emailVerified: true, on: t.db)
            let session = try await t.exchangeGoogleCode(try await t.signInWithGoogle(google))
            #expect(session.user.id == existing.id?.lowercased)
            #expect(session.notices == nil)
            #expect(try await t.login(email: "ada@example.com").status == .ok, "the password still works")
        }
    }

    @Test("an unverified email is refused and nothing is created")
    func unverifiedEmail() async throws {
        try await withGoogle { t, google in
            google.setIdentity { $0.emailVerified = false }
            let response = try await t.signInWithGoogle(google)
            #expect(fragment(response.headers.first(name: .location))["error"] == "email_not_verified")
            #expect(try await t.userCount() == 0)
            let json = try await t.signInWithGoogle(google, json: true)
            #expect(json.status == .forbidden)
            _ = try json.problem()
        }
    }

    @Test("a wrong, replayed or other browser's state is refused")
    func badState() async throws {
        try await withGoogle { t, google in
            let (location, cookie) = try await t.beginGoogleSignIn()
            let callback = try google.authorize(location)
            let code = try #require(URLComponents(string: callback)?.queryItems?.first { $0.name == "code" }?.value)
            let json: HTTPHeaders = ["Cookie": cookie, "Accept": "application/json"]

            let wrong = try await t.send(.GET, "/auth/google/callback/?code=\(code)&state=forged", headers: json)
            #expect(wrong.status == .badRequest)
            #expect(try wrong.problem().title == "Invalid sign-in state")
            let otherBrowser = try await t.send(.GET, callback, headers: ["Cookie": "chat_google_login=someone-else", "Accept": "application/json"])
            #expect(otherBrowser.status == .badRequest)
            let noCookie = try await t.send(.GET, callback, headers: ["Accept": "application/json"])
            #expect(noCookie.status == .badRequest)

            let genuine = try await t.send(.GET, callback, headers: json)
            #expect(genuine.status == .ok)
            let replayed = try await t.send(.GET, callback, headers: json)
            #expect(replayed.status == .badRequest)
            #expect(try await t.userCount() == 1)
        }
    }

    @Test("a sign-in not finished in time is refused")
    func expiredAttempt() async throws {
        try await withGoogle { t, google in
            let (location, cookie) = try await t.beginGoogleSignIn()
            let callback = try google.authorize(location)
            t.clock.advance(by: 601)
            let response = try await t.send(.GET, callback, headers: ["Cookie": cookie])
            #expect(fragment(response.headers.first(name: .location))["error"] == "invalid_state")
        }
    }

    /// What can be wrong with an ID token.
    enum TokenFlaw: String, CaseIterable, Sendable {
        case nonce, audience, issuer, expired, signature

        func apply(to identity: inout FakeOpenIDProvider.Identity) {
            switch self {
            case .nonce: identity.nonceOverride = "another-nonce"
            case .audience: identity.audience = "someone-else.apps.googleusercontent.com"
            case .issuer: identity.issuer = "https://evil.example.com"
            case .expired: identity.issuedAgo = 7200
            case .signature: identity.forgeSignature = true
            }
        }
    }

    @Test("ID tokens with the wrong nonce, audience, issuer, lifetime or signature are refused", arguments: TokenFlaw.allCases)
    func badIDToken(_ flaw: TokenFlaw) async throws {
        try await withGoogle { t, google in
            google.setIdentity { flaw.apply(to: &$0) }
            let response = try await t.signInWithGoogle(google)
            #expect(fragment(response.headers.first(name: .location))["error"] == "invalid_token", "\(flaw)")
            let json = try await t.signInWithGoogle(google, json: true)
            #expect(json.status == .unauthorized, "\(flaw)")
            #expect(try json.problem().title == "Invalid Google ID token")
            #expect(try await t.userCount() == 0)
        }
    }

    @Test("a token signed with a key not seen yet makes the server fetch Google's keys again")
    func keyRotation() async throws {
        try await withGoogle { t, google in
            let first = try await t.signInWithGoogle(google, json: true)
            #expect(first.status == .ok)
            #expect(google.jwksFetches == 1)
            let second = try await t.signInWithGoogle(google, json: true)
            #expect(second.status == .ok)
            #expect(google.jwksFetches == 1, "the keys are cached")

            google.rotateKey()
            t.clock.advance(by: 11)
            let rotated = try await t.signInWithGoogle(google, json: true)
            #expect(rotated.status == .ok)
            #expect(google.jwksFetches == 2)
        }
    }

    @Test("an error from the token endpoint ends in exchange_failed, not a 500")
    func tokenEndpointError() async throws {
        try await withGoogle { t, google in
            google.failTokenEndpoint(status: 400, error: "invalid_grant")
            let response = try await t.signInWithGoogle(google)
            #expect(fragment(response.headers.first(name: .location))["error"] == "exchange_failed")
            google.failTokenEndpoint(status: 503, error: "temporarily_unavailable")
            let json = try await t.signInWithGoogle(google, json: true)
            #expect(json.status == .badGateway)
            _ = try json.problem()
        }
    }

    @Test("a user who declines consent goes back to the frontend with error=access_denied")
    func consentDenied() async throws {
        try await withGoogle { t, google in
            let (location, cookie) = try await t.beginGoogleSignIn()
            let state = try #require(URLComponents(string: location)?.queryItems?.first { $0.name == "state" }?.value)
            let response = try await t.send(.GET, "/auth/google/callback/?error=access_denied&state=\(state)", headers: ["Cookie": cookie])
            #expect(response.status == .found)
            #expect(fragment(response.headers.first(name: .location))["error"] == "access_denied")
            #expect(try await t.userCount() == 0)
        }
    }

    @Test("next is honoured for the frontend's origins and this server's paths, exactly as parsed")
    func returnTargets() async throws {
        try await withGoogle(settings: ["FRONTEND_URL": "http://localhost:5173"]) { t, google in
            for target in ["http://localhost:5173/chats/42", "/", "/?signin=abc123", "/chats/42?x=1&y=%20z"] {
                let encoded = target.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? target
                let (location, cookie) = try await t.beginGoogleSignIn(query: "?next=\(encoded)")
                let callback = try google.authorize(location)
                let response = try await t.send(.GET, callback, headers: ["Cookie": cookie])
                #expect(response.headers.first(name: .location)?.hasPrefix(target + "#code=") == true, "\(target)")
            }
            // Without next: FRONTEND_URL.
            let plain = try await t.signInWithGoogle(google)
            #expect(plain.headers.first(name: .location)?.hasPrefix("http://localhost:5173#code=") == true)
        }
    }

    @Test("return targets a browser would read as another site are refused before anything is stored")
    func hostileReturnTargets() async throws {
        try await withGoogle(settings: ["FRONTEND_URL": "http://localhost:5173"]) { t, _ in
            let hostile = [
                "https://evil.example.com/", "//evil.example.com", "javascript:alert(1)", "/\t/evil.example", "/\n/evil.example",
                "/\r\nSet-Cookie:%20x=1", "/\\evil.example", "\\\\evil.example", "http://user@localhost:5173/", "http://localhost:5173@evil.example/",
                "/chats#fragment", "/ spaced", "http://localhost:5174/", "https://localhost:5173/", "/%2F/evil.example", " /",
            ]
            for target in hostile {
                let encoded = target.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? target
                let refused = try await t.send(.GET, "/auth/google/login/?next=\(encoded)")
                #expect(refused.status == .badRequest, "\(target.debugDescription)")
                #expect(refused.headers.first(name: .location) == nil)
                #expect(!refused.body.string.contains("evil"), "the value is not echoed")
            }
            #expect(try await SignInAttempt.query(on: t.db).count() == 0)
        }
    }

    @Test("a redirect target is accepted only when it survives parsing unchanged")
    func redirectTargetRules() {
        let origins: Set<String> = ["https://app.example.com"]
        #expect(RedirectTarget("/chats/1?a=b", allowedOrigins: origins)?.url == "/chats/1?a=b")
        #expect(RedirectTarget("https://app.example.com/x", allowedOrigins: origins)?.url == "https://app.example.com/x")
        #expect(RedirectTarget("https://APP.example.com/x", allowedOrigins: origins) != nil, "host names ignore case")
        #expect(RedirectTarget("/x", allowedOrigins: origins)?.withFragment([("code", "a b&c")]) == "/x#code=a%20b%26c")
        for bad in ["", "x", "/\t/a", "/\u{0}", "/é", "//a", "/\\a", "https://app.example.com:444/", "ftp://app.example.com/",
                    "https://u:p@app.example.com/", "/a#b", "https://other.example.com/"] {
            #expect(RedirectTarget(bad, allowedOrigins: origins) == nil, "\(bad.debugDescription)")
        }
    }

    @Test("the admin's next is held to the same rule")
    func adminReturnPath() {
        #expect(AdminAuthMiddleware.returnPath("/admin/users/?page=2") == "/admin/users/?page=2")
        for bad in ["/admin/\n/x", "/admin/\t", "//admin/", "/admin\\x", "/admin/login/", "https://evil.example/admin/", "/elsewhere"] {
            #expect(AdminAuthMiddleware.returnPath(bad) == nil, "\(bad.debugDescription)")
        }
    }
}

@Suite("Sign-in providers")
struct SignInProviderTests {
    @Test("with Google configured, /auth/providers/ offers it")
    func googleOffered() async throws {
        try await withGoogle { t, _ in
            let body = try await t.send(.GET, "/auth/providers/").jsonObject()
            #expect(body["google"] as? Bool == true)
        }
    }
}
