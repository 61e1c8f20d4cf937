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
        let passwords = try await PasswordService(cost: 4, threadPool: pool)
        let hash = try await passwords.hash("the password")
        #expect(try await passwords.verify("the password", against: hash))
        #expect(try await !passwords.verify("another one", against: hash))
        #expect(try await !passwords.verify("the password", against: nil))
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
            let user = try #require(try await User.findForRequest(id, on: t.db))
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
