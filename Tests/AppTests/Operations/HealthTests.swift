@testable import App
import Testing
import VaporTesting

@Suite("Health")
struct HealthTests {
    @Test("/healthz and /readyz answer 200 when the database is reachable", arguments: TestDatabase.all)
    func healthy(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let live = try await t.send(.GET, "/healthz")
            #expect(live.status == .ok)
            #expect(try live.jsonObject()["status"] as? String == "ok")
            let ready = try await t.send(.GET, "/readyz")
            #expect(ready.status == .ok)
            #expect(try ready.jsonObject()["database"] as? String == "ok")
        }
    }
}

@Suite("PostgreSQL")
struct PostgreSQLAvailabilityTests {
    @Test("the PostgreSQL runs are on", .enabled(if: TestDatabase.postgresURL != nil,
          "TEST_DATABASE_URL is not set: every PostgreSQL run is skipped; SQLite runs only"))
    func postgresIsReachable() async throws {
        let url = try #require(TestDatabase.postgresURL)
        try await withTestApp(.postgres(url: url)) { t in
            let ready = try await t.send(.GET, "/readyz")
            #expect(ready.status == .ok)
        }
    }
}
