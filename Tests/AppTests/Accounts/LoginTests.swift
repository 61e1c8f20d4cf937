@testable import App
import Testing
import VaporTesting

@Suite("Login")
struct LoginTests {
    @Test("login ignores the case of the email and records the sign-in", arguments: TestDatabase.all)
    func caseInsensitive(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let user = try await User.fixture(email: "case@example.com", on: t.db)
            #expect(user.lastLogin == nil)

            let response = try await t.login(email: "CASE@Example.Com")

            #expect(response.status == .ok)
            let session = try response.decoded(SessionBody.self)
            #expect(session.user.email == "case@example.com")
            let me = try await t.send(.GET, "/auth/me/", token: session.access)
            #expect(me.status == .ok)
            let stored = try #require(try await User.find(user.id, on: t.db))
            #expect(stored.lastLogin != nil)
        }
    }

    @Test("wrong password, unknown email, inactive and password-less accounts get the same 401", arguments: TestDatabase.all)
    func sameRefusal(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            _ = try await User.fixture(email: "known@example.com", on: t.db)
            _ = try await User.fixture(email: "inactive@example.com", isActive: false, on: t.db)
            _ = try await User.fixture(email: "google-only@example.com", password: nil, on: t.db)

            let wrongPassword = try await t.login(email: "known@example.com", password: "not the password")
            let unknownEmail = try await t.login(email: "nobody@example.com")
            let inactive = try await t.login(email: "inactive@example.com")
            let noPassword = try await t.login(email: "google-only@example.com", password: "")

            #expect(wrongPassword.status == .unauthorized)
            let reference = try wrongPassword.problem()
            for response in [unknownEmail, inactive] {
                #expect(response.status == .unauthorized)
                #expect(try response.problem() == reference)
            }
            #expect(noPassword.status == .badRequest, "an empty password is a validation error")
            let googleOnly = try await t.login(email: "google-only@example.com", password: "anything at all")
            #expect(try googleOnly.problem() == reference)
        }
    }

    @Test("an unknown email still costs a bcrypt verification")
    func decoyVerification() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let passwords = try PasswordService(cost: 4, threadPool: pool)
        let hash = try await passwords.hash("the password")
        #expect(try await passwords.verify("the password", against: hash))
        #expect(try await !passwords.verify("another one", against: hash))
        #expect(try await !passwords.verify("the password", against: nil))
        // The decoy is checked at the configured cost (bcrypt's work is the cost its hash names),
        // though it was made without a full-cost hash at start-up.
        let costly = try PasswordService(cost: 6, threadPool: pool)
        #expect(costly.decoyHash.hasPrefix("$2b$06$") && costly.decoyHash.count == 60)
        #expect(try await !costly.verify("", against: nil))
        #expect(try Bcrypt.verify("anything", created: costly.decoyHash) == false)
        try await pool.shutdownGracefully()
    }
}

@Suite("The signed-in user")
struct RequestUserTests {
    @Test("the user read for a request has every field but the password, and saving it keeps the password", arguments: TestDatabase.all)
    func requestUser(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register(email: "reader@example.com", name: "Reader")
            let id = try #require(UUID(uuidString: session.user.id))
            let user = try #require(try await User.findForRequest(id, on: t.db)).makeUser()
            #expect(user.email == "reader@example.com")
            #expect(user.name == "Reader")
            #expect(user.role == .basic)
            #expect(user.isActive)
            #expect(user.createdAt != nil)
            #expect(try await User.findForRequest(UUID(), on: t.db) == nil)

            user.name = "Renamed"
            try await user.save(on: t.db)
            #expect(try await User.find(id, on: t.db)?.name == "Renamed")
            #expect(try await t.login(email: "reader@example.com").status == .ok)
        }
    }
}

@Suite("Login throttling")
struct LoginThrottleTests {
    /// Known clients' own budget is tight, unknown clients share a loose one per account; the
    /// per-address request limit is out of the way.
    static let limits = ["RATE_LIMIT_LOGIN_FAILURES": "3/hour", "RATE_LIMIT_LOGIN_ACCOUNT": "5/hour"]

    static func login(_ t: TestApp, _ email: String, _ password: String, from address: String,
                      cookie: String? = nil) async throws -> PeerResponse {
        try await t.send(.POST, "/auth/login/", from: address, headers: cookie.map { ["Cookie": $0] } ?? [:],
                         json: ["email": email, "password": password])
    }

    /// The `name=value` of the device cookie a sign-in set.
    static func deviceCookie(_ response: PeerResponse) throws -> String {
        let header = try #require(response.headers[.setCookie].first { $0.hasPrefix("chat_device_") })
        return String(header.prefix { $0 != ";" })
    }

    @Test("unknown clients share one budget per account: a thousand addresses get what one would, then 429 before any password is checked",
          arguments: TestDatabase.all)
    func unknownClientsShareABudget(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: Self.limits) { t in
            let email = uniqueEmail()
            _ = try await t.register(email: email)
            var answers: [HTTPStatus] = []
            for n in 0..<40 {
                let address = n % 2 == 0 ? "192.0.2.\(n)" : "2001:db8:\(n)::1"
                answers.append(try await Self.login(t, email, "guess \(n)!", from: address).status)
            }
            #expect(answers.prefix(5).allSatisfy { $0 == .unauthorized })
            #expect(answers.dropFirst(5).allSatisfy { $0 == .tooManyRequests }, "\(answers)")
            // Spent: an unknown client is refused before its password is checked, even the right one.
            let refused = try await Self.login(t, email, testPassword, from: "198.51.100.99")
            #expect(refused.status == .tooManyRequests)
            #expect(refused.header("Retry-After") != nil)
            // Another account is not affected.
            let other = uniqueEmail()
            _ = try await t.register(email: other)
            #expect(try await Self.login(t, other, testPassword, from: "192.0.2.1").status == .ok)
        }
    }

    @Test("the owner, from an address that signed in before, gets in while the account is attacked — even after a typo",
          arguments: TestDatabase.all)
    func knownAddressKeepsItsBudget(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: Self.limits) { t in
            let email = uniqueEmail()
            _ = try await t.register(email: email)
            #expect(try await Self.login(t, email, testPassword, from: "198.51.100.7").status == .ok)
            for n in 0..<10 { _ = try await Self.login(t, email, "guess \(n)!", from: "203.0.113.\(n)") }
            #expect(try await Self.login(t, email, "guess!", from: "203.0.113.200").status == .tooManyRequests, "the attack's budget is spent")
            #expect(try await Self.login(t, email, "a typo", from: "198.51.100.7").status == .unauthorized)
            #expect(try await Self.login(t, email, testPassword, from: "198.51.100.7").status == .ok)
            // A known address has a budget of its own (the typo took one of three), and spends it.
            for _ in 0..<2 { #expect(try await Self.login(t, email, "wrong again", from: "198.51.100.7").status == .unauthorized) }
            #expect(try await Self.login(t, email, testPassword, from: "198.51.100.7").status == .tooManyRequests)
            // An address is known for 30 days after its last sign-in.
            t.clock.advance(by: 31 * 86_400)
            for n in 0..<5 { _ = try await Self.login(t, email, "guess \(n)!", from: "203.0.113.\(n)") }
            #expect(try await Self.login(t, email, testPassword, from: "198.51.100.7").status == .tooManyRequests, "known for 30 days only")
        }
    }

    @Test("a device cookie keeps the owner's budget wherever they are; it never signs anyone in, and fits one account only",
          arguments: TestDatabase.all)
    func deviceCookie(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: Self.limits) { t in
            let email = uniqueEmail()
            _ = try await t.register(email: email)
            let first = try await Self.login(t, email, testPassword, from: "198.51.100.7")
            let header = try #require(first.headers[.setCookie].first { $0.hasPrefix("chat_device_") })
            for attribute in ["HttpOnly", "SameSite=Strict", "Path=/auth/", "Secure"] {
                #expect(header.contains(attribute), "\(attribute) in \(header)")
            }
            let cookie = try Self.deviceCookie(first)
            for n in 0..<10 { _ = try await Self.login(t, email, "guess \(n)!", from: "203.0.113.\(n)") }
            // A new address, with the cookie: its own budget.
            #expect(try await Self.login(t, email, "typo", from: "192.0.2.44", cookie: cookie).status == .unauthorized)
            #expect(try await Self.login(t, email, testPassword, from: "192.0.2.45", cookie: cookie).status == .ok)
            // Without it, or with a forged or another account's cookie, the client is unknown.
            #expect(try await Self.login(t, email, testPassword, from: "192.0.2.46").status == .tooManyRequests)
            let forged = cookie.prefix { $0 != "." } + ".AAAAAAAAAAAAAAAAAAAAAA"
            #expect(try await Self.login(t, email, testPassword, from: "192.0.2.46", cookie: String(forged)).status == .tooManyRequests)
            let other = uniqueEmail()
            _ = try await t.register(email: other)
            let otherCookie = try Self.deviceCookie(try await Self.login(t, other, testPassword, from: "192.0.2.47"))
            let swapped = Self.cookieName(of: cookie) + "=" + otherCookie.split(separator: "=", maxSplits: 1)[1]
            #expect(try await Self.login(t, email, testPassword, from: "192.0.2.46", cookie: swapped).status == .tooManyRequests)
            // The cookie alone is nothing: the API reads no cookie to authenticate.
            #expect(try await t.send(.GET, "/auth/me/", from: "192.0.2.45", headers: ["Cookie": cookie]).status == .unauthorized)
        }
    }

    static func cookieName(of pair: String) -> String { String(pair.prefix { $0 != "=" }) }

    @Test("concurrent attempts are counted and checked in one step: no more guesses than the budget get a password check",
          arguments: TestDatabase.all)
    func concurrentAttempts(_ database: TestDatabase) async throws {
        try await database.onFile { file in try await withTestApp(database, settings: file.merging(Self.limits) { $1 }) { t in
            let email = uniqueEmail()
            _ = try await t.register(email: email)
            let statuses = try await withThrowingTaskGroup(of: HTTPStatus.self) { group in
                for n in 0..<30 {
                    group.addTask { try await Self.login(t, email, "guess \(n)!", from: "203.0.113.\(n)").status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .unauthorized }.count == 5, "\(statuses)")
            #expect(statuses.filter { $0 == .tooManyRequests }.count == 25)
        } }
    }

    @Test("only failures count: signing in successfully never uses up a limit")
    func successesDoNotCount() async throws {
        try await withTestApp(.sqlite, settings: Self.limits) { t in
            let email = uniqueEmail()
            _ = try await t.register(email: email)
            for n in 0..<8 {
                // Unknown at first, then known: either way a right password is given back its count.
                #expect(try await Self.login(t, email, testPassword, from: n < 4 ? "198.51.100.\(n)" : "198.51.100.7").status == .ok)
            }
        }
    }

    @Test("the admin sign-in and the API each have their own throttle")
    func adminApart() async throws {
        try await withTestApp(.sqlite, settings: Self.limits.merging(["RATE_LIMIT_ADMIN_LOGIN_ACCOUNT": "2/hour"]) { $1 }) { t in
            let staff = try await User.fixture(isStaff: true, on: t.db)
            for _ in 0..<5 { #expect(try await t.login(email: staff.email, password: "a wrong guess").status == .unauthorized) }
            #expect(try await t.login(email: staff.email).status == .tooManyRequests, "the API's throttle is spent")
            let admin = AdminClient(t)
            #expect(try await admin.signIn(staff.email).status == .seeOther, "the admin sign-in is not")

            let other = try await User.fixture(isStaff: true, on: t.db)
            let guesser = AdminClient(t)
            for _ in 0..<2 { #expect(try await guesser.signIn(other.email, password: "a wrong guess").status == .unauthorized) }
            #expect(try await guesser.signIn(other.email).status == .tooManyRequests)
            #expect(try await t.login(email: other.email).status == .ok, "and the API's sign-in is open")
        }
    }

    @Test("over-long or malformed identifiers are refused before any lookup or count")
    func boundedIdentifiers() async throws {
        try await withTestApp(.sqlite, settings: Self.limits) { t in
            let store = try #require(try t.services.limiter.store as? InMemoryRateLimitStore)
            let keysBefore = store.keyCount
            let huge = String(repeating: "a", count: 500_000) + "@example.com"
            for (email, password) in [(huge, testPassword), (String(repeating: "a", count: 250) + "@example.com", testPassword),
                                      ("not an email", testPassword), (uniqueEmail(), String(repeating: "p", count: 73))] {
                let response = try await t.send(.POST, "/auth/login/", from: "192.0.2.9", json: ["email": email, "password": password])
                #expect(response.status == .badRequest)
                _ = try response.problem()
            }
            // The address's anonymous and auth limits counted them (two keys); no email became a key.
            #expect(store.keyCount <= keysBefore + 2)
        }
    }
}
