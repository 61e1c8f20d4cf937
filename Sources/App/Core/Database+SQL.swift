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
