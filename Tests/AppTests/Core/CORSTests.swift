@testable import App
import Testing
import Vapor
import VaporTesting

@Suite("CORS")
struct CORSTests {
    @Test("a preflight from an allowed origin is answered, without allowing credentials")
    func allowedPreflight() async throws {
        try await withTestApp(.sqlite, settings: ["CORS_ALLOWED_ORIGINS": "http://localhost:5173"]) { t in
            let response = try await t.send(.OPTIONS, "/auth/login/", headers: [
                "Origin": "http://localhost:5173",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization",
            ])
            #expect(response.status == .noContent)
            #expect(response.headers.first(name: .accessControlAllowOrigin) == "http://localhost:5173")
            #expect(response.headers.first(name: .accessControlAllowCredentials) == nil, "bearer tokens only: no cookies cross origins")
            #expect(response.headers.first(name: .accessControlAllowMethods)?.contains("POST") == true)
            #expect(response.headers.first(name: .accessControlAllowHeaders)?.contains("Authorization") == true)
            #expect(response.headers[.vary].contains("Origin"))
        }
    }

    @Test("a preflight from another origin is refused and nothing is allowed")
    func refusedPreflight() async throws {
        try await withTestApp(.sqlite, settings: ["CORS_ALLOWED_ORIGINS": "http://localhost:5173"]) { t in
            let response = try await t.send(.OPTIONS, "/auth/login/", headers: [
                "Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST",
            ])
            #expect(response.status == .forbidden)
            #expect(response.headers.first(name: .accessControlAllowOrigin) == nil)
            _ = try response.problem()
        }
    }

    @Test("responses name only allowed origins, including on errors")
    func simpleRequests() async throws {
        try await withTestApp(.sqlite, settings: ["CORS_ALLOWED_ORIGINS": "https://app.example.com"]) { t in
            let allowed = try await t.send(.GET, "/auth/me/", headers: ["Origin": "https://app.example.com"])
            #expect(allowed.status == .unauthorized)
            #expect(allowed.headers.first(name: .accessControlAllowOrigin) == "https://app.example.com")
            #expect(allowed.headers.first(name: .accessControlExpose)?.contains("WWW-Authenticate") == true)

            let other = try await t.send(.GET, "/healthz", headers: ["Origin": "http://localhost:5173"])
            #expect(other.status == .ok)
            #expect(other.headers.first(name: .accessControlAllowOrigin) == nil)
        }
    }

    @Test("in production no origin is trusted until CORS_ALLOWED_ORIGINS names it")
    func productionDefault() async throws {
        try await withTestApp(.sqlite) { t in
            let preflight = try await t.send(.OPTIONS, "/auth/login/", headers: [
                "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
            ])
            #expect(preflight.status == .forbidden)
            #expect(preflight.headers.first(name: .accessControlAllowOrigin) == nil)
        }
    }
}
