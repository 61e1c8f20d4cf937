import AsyncKit
import PostgresNIO
import SQLiteNIO
import Vapor

/// Database failures that are the database's state rather than the request's fault: it cannot be
/// reached or is restarting, no connection came free in time, the server is shutting down, it broke
/// a deadlock or a serialization conflict by rolling the transaction back (PostgreSQL), or (SQLite)
/// the file is locked, read-only or its disk full. Each is answered 503 problem+json
/// with `Retry-After` and `"code": "database_unavailable"` — never a 500 — and nothing was stored.
enum DatabaseUnavailable {
    /// The problem for `error` when it is one of these; nil for every other error.
    static func problem(for error: any Error) -> HTTPProblem? {
        guard let cause = cause(of: error) else { return nil }
        return HTTPProblem(.serviceUnavailable, title: "Database unavailable", detail: cause,
                           headers: ["Retry-After": "5"], code: "database_unavailable")
    }

    /// Whether `error` is one of these (a write worth trying again once the database is back).
    static func matches(_ error: any Error) -> Bool { cause(of: error) != nil }

    private static let unreachable = "The database cannot be reached right now; nothing was changed. Try again shortly."

    private static func cause(of error: any Error) -> String? {
        switch error {
        case let error as PSQLError:
            return postgresCause(error)
        case PostgresError.connectionClosed:
            // The older error type, still thrown by a connection the server or the network closed
            // under a query that was already on its way.
            return unreachable
        case is ConnectionPoolTimeoutError:
            return "The database is too busy to take this request right now; nothing was changed. Try again shortly."
        case is ConnectionPoolError, is DatabaseClosed:
            return "The server is shutting down; try again in a moment."
        case let error as SQLiteError:
            return sqliteCause(error)
        default:
            return nil
        }
    }

    private static func postgresCause(_ error: PSQLError) -> String? {
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
            return unreachable
        case .server:
            // Connection exceptions (08), too many connections and out of space (53), a server
            // shutting down or starting up (57P).
            guard let state = error.serverInfo?[.sqlState] else { return nil }
            if state.hasPrefix("08") || ["53300", "57P01", "57P02", "57P03"].contains(state) { return unreachable }
            if state == "53100" { return "The database's disk is full; nothing was stored." }
            // Deadlock detected, serialization failure: the transaction was rolled back; once more may pass.
            if state == "40P01" || state == "40001" {
                return "The change met another one at the same moment and was rolled back; nothing was changed. Try again."
            }
            return nil
        default:
            return nil
        }
    }

    private static func sqliteCause(_ error: SQLiteError) -> String? {
        switch error.reason {
        case .busy, .locked:
            return "The database is busy; nothing was changed. Try again shortly."
        case .readOnly:
            return "The database cannot be written to right now (it is read-only); nothing was stored."
        case .full:
            return "The database's disk is full; nothing was stored."
        case .ioError, .cantOpen:
            return "The database file cannot be read or written right now; nothing was stored."
        default:
            return nil
        }
    }
}
