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
    /// Tight per account and client, loose per account; the per-address request limit is out of the way.
    static let limits = ["RATE_LIMIT_LOGIN_FAILURES": "3/hour", "RATE_LIMIT_LOGIN_ACCOUNT": "5/hour"]

    @Test("a stranger's wrong passwords do not keep the owner out", arguments: TestDatabase.all)
    func strangerCannotLockOut(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: Self.limits) { t in
            let email = uniqueEmail()
            _ = try await t.register(email: email)
            for _ in 0..<3 {
                let guess = try await t.send(.POST, "/auth/login/", from: "203.0.113.66", json: ["email": email, "password": "a wrong guess"])
                #expect(guess.status == .unauthorized)
            }
            let attacker = try await t.send(.POST, "/auth/login/", from: "203.0.113.66", json: ["email": email, "password": "another guess"])
            #expect(attacker.status == .tooManyRequests, "the failing address is stopped")
            #expect(attacker.header("Retry-After") != nil)
            let owner = try await t.send(.POST, "/auth/login/", from: "198.51.100.7", json: ["email": email, "password": testPassword])
            #expect(owner.status == .ok, "the owner, from an address that has not been failing, signs in")
        }
    }

    @Test("only failures count: signing in successfully never uses up a limit")
    func successesDoNotCount() async throws {
        try await withTestApp(.sqlite, settings: Self.limits) { t in
            let email = uniqueEmail()
            _ = try await t.register(email: email)
            for _ in 0..<8 {
                #expect(try await t.send(.POST, "/auth/login/", from: "198.51.100.7", json: ["email": email, "password": testPassword]).status == .ok)
            }
        }
    }

    @Test("an account guessed at from many addresses: failing addresses are stopped, a fresh one with the right password signs in")
    func distributedGuessing() async throws {
        try await withTestApp(.sqlite, settings: Self.limits) { t in
            let email = uniqueEmail()
            _ = try await t.register(email: email)
            // Five addresses fail once each: the account's budget of failures is spent.
            for n in 1...5 {
                #expect(try await t.send(.POST, "/auth/login/", from: "192.0.2.\(n)", json: ["email": email, "password": "guess \(n)!"]).status == .unauthorized)
            }
            // An address that has failed is stopped now, even with the right password.
            #expect(try await t.send(.POST, "/auth/login/", from: "192.0.2.1", json: ["email": email, "password": testPassword]).status == .tooManyRequests)
            // A fresh address gets one try: wrong, and then it is stopped too.
            #expect(try await t.send(.POST, "/auth/login/", from: "192.0.2.50", json: ["email": email, "password": "guess 50!"]).status == .unauthorized)
            #expect(try await t.send(.POST, "/auth/login/", from: "192.0.2.50", json: ["email": email, "password": "guess 51!"]).status == .tooManyRequests)
            // The owner, from an address that has not been failing, still signs in.
            #expect(try await t.send(.POST, "/auth/login/", from: "198.51.100.7", json: ["email": email, "password": testPassword]).status == .ok)
            // Other accounts are not affected at all.
            let other = uniqueEmail()
            _ = try await t.register(email: other)
            #expect(try await t.send(.POST, "/auth/login/", from: "192.0.2.1", json: ["email": other, "password": testPassword]).status == .ok)
        }
    }

    @Test("the admin sign-in and the API each have their own throttle")
    func adminApart() async throws {
        try await withTestApp(.sqlite, settings: Self.limits.merging(["RATE_LIMIT_ADMIN_LOGIN_FAILURES": "2/hour"]) { $1 }) { t in
            let staff = try await User.fixture(isStaff: true, on: t.db)
            for _ in 0..<3 { #expect(try await t.login(email: staff.email, password: "a wrong guess").status == .unauthorized) }
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
