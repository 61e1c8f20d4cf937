import Fluent
import SQLKit

/// The configured database does not speak SQL. Both databases this server supports do, so this
/// is a wiring mistake, reported as a 500 that names it.
struct SQLDatabaseRequired: HTTPProblemConvertible, CustomStringConvertible {
    var description: String { "the configured database does not speak SQL" }
    var problem: HTTPProblem { HTTPProblem(.internalServerError, detail: "The database does not speak SQL.") }
}

extension Database {
    /// This database as SQLKit sees it, for the queries Fluent's query builder cannot express or
    /// makes slow.
    func sql() throws(SQLDatabaseRequired) -> any SQLDatabase {
        guard let sql = self as? any SQLDatabase else { throw SQLDatabaseRequired() }
        return sql
    }
}

extension Database {
    /// Serialises transactions that read and then write the same rows: call it first in the
    /// transaction. PostgreSQL: a transaction-scoped advisory lock on `key` (its statements each see
    /// only what was committed before they began, so two such transactions could each miss the
    /// other's writes). SQLite: a write, which takes the database's write lock before anything is
    /// read — a transaction that reads first and writes later can deadlock with another one doing the
    /// same, and one of them fails with "database is locked" instead of waiting.
    func lockForWriting(_ key: String) async throws {
        let sql = try sql()
        if sql.dialect.name == "postgresql" {
            try await sql.raw("SELECT pg_advisory_xact_lock(hashtextextended(\(bind: key), 0))").run()
        } else {
            try await sql.raw("UPDATE _fluent_migrations SET batch = batch WHERE 1 = 0").run()
        }
    }
}
