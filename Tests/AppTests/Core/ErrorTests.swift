@testable import App
import Foundation
import Testing
import Vapor
import VaporTesting

@Suite("Errors are problem+json")
struct ErrorTests {
    @Test("an unknown route is 404 problem+json")
    func unknownRoute() async throws {
        try await withTestApp(.sqlite) { t in
            let response = try await t.send(.GET, "/no/such/thing/")
            #expect(response.status == .notFound)
            #expect(try response.problem().title == "Not Found")
        }
    }

    @Test("a wrong method is 405 with Allow, and OPTIONS lists the methods")
    func wrongMethod() async throws {
        try await withTestApp(.sqlite) { t in
            let response = try await t.send(.GET, "/auth/register/")
            #expect(response.status == .methodNotAllowed)
            #expect(response.headers.first(name: "Allow") == "POST")
            _ = try response.problem()

            let options = try await t.send(.OPTIONS, "/auth/me/")
            #expect(options.status == .noContent)
            #expect(options.headers.first(name: "Allow") == "DELETE, GET, HEAD, PATCH, OPTIONS")
        }
    }

    @Test("malformed JSON and a non-object body are 400")
    func malformedJSON() async throws {
        try await withTestApp(.sqlite) { t in
            for body in [#"{"email": "a@example.com", "#, "[1, 2]", "", "null"] {
                let response = try await t.send(.POST, "/auth/login/", body: body, contentType: "application/json")
                #expect(response.status == .badRequest, "\(body)")
                _ = try response.problem()
            }
        }
    }

    @Test("a body that is not JSON is 415")
    func wrongContentType() async throws {
        try await withTestApp(.sqlite) { t in
            let form = try await t.send(.POST, "/auth/register/", body: "email=a%40example.com&password=testpass123",
                                        contentType: "application/x-www-form-urlencoded")
            #expect(form.status == .unsupportedMediaType)
            _ = try form.problem()
            let none = try await t.send(.POST, "/auth/register/", body: #"{"email":"a@example.com"}"#)
            #expect(none.status == .unsupportedMediaType)
            #expect(try await t.userCount() == 0)
        }
    }

    @Test("a body over MAX_BODY_SIZE is 413 problem+json")
    func bodyTooLarge() async throws {
        try await withTestApp(.sqlite, settings: ["MAX_BODY_SIZE": "1kb"]) { t in
            try await t.withLiveServer { base in
                let big = #"{"email":"a@example.com","password":""# + String(repeating: "x", count: 2048) + #""}"#
                let response = try await LiveHTTP.send(.POST, base + "/auth/register/",
                                                       headers: ["Content-Type": "application/json"], body: ByteBuffer(string: big))
                #expect(response.status == .payloadTooLarge)
                #expect(response.headers.first(name: .contentType) == "application/problem+json")
                #expect(response.body.contains(#""status":413"#))
            }
            #expect(try await t.userCount() == 0)
        }
    }

    @Test("paths answer with or without their trailing slash")
    func trailingSlash() async throws {
        try await withTestApp(.sqlite) { t in
            let response = try await t.send(.POST, "/auth/register", json: ["email": uniqueEmail(), "password": testPassword])
            #expect(response.status == .created)
            #expect(try await t.send(.GET, "/healthz/").status == .ok)
            #expect(try await t.send(.GET, "/healthz").status == .ok)
        }
    }

    @Test("an internal error is 500 without internals, unless DEBUG")
    func internalError() async throws {
        struct Secret: Error { let password = "hunter2" }
        for debug in [false, true] {
            try await withTestApp(.sqlite, settings: ["DEBUG": debug ? "true" : "false"]) { t in
                t.app.get("boom") { _ -> String in throw Secret() }
                let response = try await t.send(.GET, "/boom")
                #expect(response.status == .internalServerError)
                let problem = try response.problem()
                #expect(problem.detail?.contains("hunter2") == debug)
            }
        }
    }

    @Test("outside DEBUG a Host not in ALLOWED_HOSTS is 400; the request id is echoed")
    func allowedHosts() async throws {
        try await withTestApp(.sqlite, settings: ["ALLOWED_HOSTS": "chat.example.com,.example.org"]) { t in
            let evil = try await t.send(.GET, "/healthz", headers: ["Host": "evil.example.net"])
            #expect(evil.status == .badRequest)
            #expect(try evil.problem().title == "Host not allowed")
            for host in ["chat.example.com", "chat.example.com:8443", "example.org", "api.example.org"] {
                let ok = try await t.send(.GET, "/healthz", headers: ["Host": host])
                #expect(ok.status == .ok, "\(host)")
            }
            let traced = try await t.send(.GET, "/healthz", headers: ["Host": "chat.example.com", "X-Request-ID": "trace-123"])
            #expect(traced.headers.first(name: "X-Request-ID") == "trace-123")
        }
    }
}
