@testable import App
import Testing
import VaporTesting

@Suite("Registration")
struct RegistrationTests {
    @Test("the seed's register request works verbatim and its token opens /auth/me/", arguments: TestDatabase.all)
    func seedQuickTest(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            // MUT
            let response = try await t.send(.POST, "/auth/register/", body: #"{"email":"test@example.com", "password":"testpass123"}"#,
                                            contentType: "application/json")
            // validate
            #expect(response.status == .created)
            let session = try response.decoded(SessionBody.self)
            #expect(session.token_type == "Bearer")
            #expect(session.expires_in == 900)
            #expect(session.user.email == "test@example.com")
            #expect(session.user.role == "basic")
            #expect(session.user.is_staff == false)
            #expect(session.user.id == session.user.id.lowercased())
            #expect(UUID(uuidString: session.user.id) != nil)
            #expect(session.user.created_at.hasSuffix("Z"))

            let me = try await t.send(.GET, "/auth/me/", token: session.access)
            #expect(me.status == .ok)
            let user = try me.decoded(SessionBody.UserBody.self)
            #expect(user.id == session.user.id)
            #expect(user.email == "test@example.com")
        }
    }

    @Test("the email is stored lowercased and the name kept", arguments: TestDatabase.all)
    func normalizesEmail(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register(email: "  Mixed.Case@Example.COM ", name: "Ada Lovelace")
            #expect(session.user.email == "mixed.case@example.com")
            #expect(session.user.name == "Ada Lovelace")
            let stored = try #require(try await User.find(email: "MIXED.case@example.com", on: t.db))
            #expect(stored.email == "mixed.case@example.com")
            #expect(stored.passwordHash?.hasPrefix("$2") == true)
        }
    }

    @Test("an email registered in another case is a 409 conflict", arguments: TestDatabase.all)
    func duplicateEmail(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            _ = try await t.register(email: "dup@example.com")
            let response = try await t.send(.POST, "/auth/register/", json: ["email": "DUP@Example.com", "password": testPassword])
            #expect(response.status == .conflict)
            let problem = try response.problem()
            #expect(problem.errors?["email"] != nil)
            #expect(try await t.userCount() == 1)
        }
    }

    @Test("bad input is a 400 listing each field, and nothing is stored", arguments: TestDatabase.all)
    func invalidInput(_ database: TestDatabase) async throws {
        let cases: [(json: [String: Any], field: String, message: String)] = [
            (["email": "not-an-email", "password": testPassword], "email", "valid email"),
            (["email": "a@b", "password": testPassword], "email", "valid email"),
            (["email": "x@example.com", "password": "short1"], "password", "too short"),
            (["email": "x@example.com", "password": "1234567890"], "password", "entirely numeric"),
            (["email": "someone@example.com", "password": "someone@example.com"], "password", "similar to the email"),
            (["email": "someone@example.com", "password": "SOMEONE"], "password", "too short"),
            (["email": "x@example.com", "password": String(repeating: "é", count: 40)], "password", "too long"),
            (["email": "x@example.com", "password": testPassword, "name": String(repeating: "n", count: 151)], "name", "150"),
            (["email": 42, "password": testPassword], "email", "Expected a string"),
            (["email": "x@example.com", "password": NSNull()], "password", "required"),
            (["password": testPassword], "email", "required"),
        ]
        try await withTestApp(database) { t in
            for (json, field, message) in cases {
                let response = try await t.send(.POST, "/auth/register/", json: json)
                #expect(response.status == .badRequest, "\(json)")
                let problem = try response.problem()
                let messages = problem.errors?[field] ?? []
                #expect(messages.contains { $0.contains(message) }, "\(json) → \(problem)")
            }
            #expect(try await t.userCount() == 0)
        }
    }

    @Test("every missing field is reported at once")
    func missingFields() async throws {
        try await withTestApp(.sqlite) { t in
            let response = try await t.send(.POST, "/auth/register/", json: [:])
            #expect(response.status == .badRequest)
            let problem = try response.problem()
            #expect(Set(problem.errors?.keys.map { $0 } ?? []) == ["email", "password"])
        }
    }
}
