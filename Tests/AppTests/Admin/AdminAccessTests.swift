@testable import App
import Fluent
import Foundation
import Testing
import VaporTesting

@Suite("Admin sign-in and protection")
struct AdminAccessTests {
    @Test("staff sign in with a secure session cookie, see the dashboard, and sign out", arguments: TestDatabase.all)
    func signInAndOut(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let staff = try await User.fixture(isStaff: true, on: t.db)
            let browser = AdminClient(t)

            let anonymous = try await browser.get("/admin/users/?q=x")
            #expect(anonymous.status == .seeOther)
            #expect(anonymous.location == "/admin/login/?next=/admin/users/?q%3Dx")

            let login = try await browser.get("/admin/login/")
            #expect(login.status == .ok)
            #expect(login.headers.first(name: .contentType)?.hasPrefix("text/html") == true)
            let signedIn = try await browser.post("/admin/login/", ["email": staff.email.uppercased(), "password": testPassword])
            #expect(signedIn.status == .seeOther)
            #expect(signedIn.location == "/admin/")
            let cookie = try #require(signedIn.headers[.setCookie].first { $0.hasPrefix("chat_admin_session=") })
            #expect(cookie.contains("HttpOnly"))
            #expect(cookie.contains("SameSite=Lax"))
            #expect(cookie.contains("Secure"))
            #expect(cookie.contains("Path=/admin"))

            let dashboard = try await browser.get("/admin/")
            #expect(dashboard.status == .ok)
            #expect(browser.html.contains("Dashboard"))
            #expect(browser.html.contains(staff.email))
            #expect(try await User.find(staff.id, on: t.db)?.lastLogin != nil)

            let stolen = browser.cookies["chat_admin_session"]
            let out = try await browser.post("/admin/logout/")
            #expect(out.status == .seeOther)
            #expect(try await browser.get("/admin/").status == .seeOther)
            // The old cookie is dead on the server too.
            let replay = try await t.send(.GET, "/admin/", headers: ["Cookie": "chat_admin_session=\(stolen ?? "")"])
            #expect(replay.status == .seeOther)
            #expect(try await AdminSession.query(on: t.db).count() == 0)
        }
    }

    @Test("wrong password, unknown email, non-staff and inactive staff all get the same refusal")
    func refusals() async throws {
        try await withTestApp(.sqlite) { t in
            let member = try await User.fixture(on: t.db)
            let inactive = try await User.fixture(isActive: false, isStaff: true, on: t.db)
            let staff = try await User.fixture(isStaff: true, on: t.db)
            var messages = Set<String>()
            for (email, password) in [(staff.email, "wrong password!"), ("nobody@example.com", testPassword),
                                      (member.email, testPassword), (inactive.email, testPassword)] {
                let browser = AdminClient(t)
                let response = try await browser.signIn(email, password: password)
                #expect(response.status == .unauthorized, "\(email)")
                #expect(!response.headers[.setCookie].contains { $0.hasPrefix("chat_admin_session=") })
                let alert = try #require(browser.html.range(of: #"<p class="error" role="alert">[^<]*</p>"#, options: .regularExpression))
                messages.insert(String(browser.html[alert]))
            }
            #expect(messages.count == 1)
            #expect(try await AdminSession.query(on: t.db).count() == 0)
        }
    }

    @Test("a POST without a valid CSRF token is 403 and changes nothing", arguments: TestDatabase.all)
    func csrf(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let staff = try await User.fixture(isStaff: true, on: t.db)
            let target = try await User.fixture(on: t.db)
            let id = try target.requireID()

            // Sign-in itself: the form's token must match its cookie.
            let forged = AdminClient(t)
            #expect(try await forged.post("/admin/login/", ["email": staff.email, "password": testPassword], csrf: .some(nil)).status == .forbidden)
            #expect(try await forged.post("/admin/login/", ["email": staff.email, "password": testPassword], csrf: "made-up").status == .forbidden)

            let browser = AdminClient(t)
            try await browser.signIn(staff.email)
            try await browser.get("/admin/users/\(id)/")
            for token in [String?.none, "wrong-token"] {
                let response = try await browser.post("/admin/users/\(id)/", ["name": "Changed", "role": "premium", "is_active": "on"], csrf: .some(token))
                #expect(response.status == .forbidden)
                #expect(browser.html.contains("CSRF"))
                let deleted = try await browser.post("/admin/users/\(id)/delete/", csrf: .some(token))
                #expect(deleted.status == .forbidden)
            }
            let unchanged = try #require(try await User.find(id, on: t.db))
            #expect(unchanged.name == "")
            #expect(unchanged.role == .basic)
            // Another session's token does not work either.
            let other = AdminClient(t)
            try await other.signIn(staff.email)
            try await browser.get("/admin/users/\(id)/")
            #expect(try await browser.post("/admin/users/\(id)/delete/", csrf: other.csrf).status == .forbidden)
            #expect(try await User.find(id, on: t.db) != nil)
        }
    }

    @Test("admin pages forbid framing and caching and allow only this site's stylesheet")
    func headers() async throws {
        try await withTestApp(.sqlite) { t in
            let staff = try await User.fixture(isStaff: true, on: t.db)
            let browser = AdminClient(t)
            for response in [try await browser.get("/admin/login/"), try await browser.signIn(staff.email), try await browser.get("/admin/"),
                             try await browser.get("/admin/users/\(UUID())/")] {
                #expect(response.headers.first(name: "X-Frame-Options") == "DENY")
                #expect(response.headers.first(name: .cacheControl) == "no-store")
                let policy = try #require(response.headers.first(name: "Content-Security-Policy"))
                #expect(policy.contains("default-src 'none'"))
                #expect(policy.contains("style-src 'self'"))
                #expect(!policy.contains("script-src"))
            }
            #expect(browser.last?.status == .notFound)
            let stylesheet = try await t.send(.GET, "/admin/admin.css")
            #expect(stylesheet.status == .ok)
            #expect(stylesheet.headers.first(name: .contentType)?.hasPrefix("text/css") == true)
        }
    }

    @Test("a session ends after ADMIN_SESSION_LIFETIME, and when the user stops being staff")
    func expiry() async throws {
        try await withTestApp(.sqlite, settings: ["ADMIN_SESSION_LIFETIME": "1h"]) { t in
            let staff = try await User.fixture(isStaff: true, on: t.db)
            let browser = AdminClient(t)
            try await browser.signIn(staff.email)
            #expect(try await browser.get("/admin/").status == .ok)
            t.clock.advance(by: 3601)
            #expect(try await browser.get("/admin/").status == .seeOther)

            try await browser.signIn(staff.email)
            #expect(try await browser.get("/admin/").status == .ok)
            staff.isStaff = false
            try await staff.save(on: t.db)
            #expect(try await browser.get("/admin/").status == .seeOther)
        }
    }

    @Test("admin sign-in is throttled per account and per address")
    func throttled() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_ADMIN_LOGIN_ACCOUNT": "2/hour"]) { t in
            let staff = try await User.fixture(isStaff: true, on: t.db)
            let browser = AdminClient(t)
            #expect(try await browser.signIn(staff.email, password: "guess one!").status == .unauthorized)
            #expect(try await browser.signIn(staff.email, password: "guess two!").status == .unauthorized)
            let blocked = try await browser.signIn(staff.email)
            #expect(blocked.status == .tooManyRequests)
            #expect(blocked.headers.first(name: "Retry-After") != nil)
            #expect(blocked.headers.first(name: .contentType)?.hasPrefix("text/html") == true)
            #expect(try await AdminSession.query(on: t.db).count() == 0)
        }
    }
}
