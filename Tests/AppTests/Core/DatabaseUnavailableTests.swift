@testable import App
import PostgresNIO
import Testing

@Suite("Which database failures are the database's state (503), not the request's fault")
struct DatabaseUnavailableTests {
    @Test("a PostgreSQL connection closed under a query (PostgresError.connectionClosed) is 503 database_unavailable, not 500; other errors are not")
    func connectionClosed() {
        // Seen in CI: PostgreSQL cut off while a request's query was in flight answered 500.
        let problem = DatabaseUnavailable.problem(for: PostgresError.connectionClosed)
        #expect(problem?.status == .serviceUnavailable && problem?.code == "database_unavailable")
        #expect(problem?.headers.first(name: "Retry-After") != nil)
        #expect(DatabaseUnavailable.problem(for: PostgresError.protocol("unexpected message")) == nil)
        #expect(!DatabaseUnavailable.matches(CancellationError()))
    }
}
