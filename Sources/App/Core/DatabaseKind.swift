import Fluent
import Foundation
import SQLKit

/// The two databases this server runs on, told apart once — from `DATABASE_URL` at start-up — and
/// handed to what writes SQL that differs between them (the chat storage, the migrations, locks),
/// instead of being guessed from a driver's name at each use.
public enum DatabaseKind: Sendable, Equatable {
    case sqlite
    case postgres
}

extension DatabaseSettings {
    public var kind: DatabaseKind {
        if case .postgres = location { return .postgres }
        return .sqlite
    }
}

extension Database {
    /// Serialises transactions that read and then write the same rows: call it first in the
    /// transaction. PostgreSQL: a transaction-scoped advisory lock on `key` (its statements each see
    /// only what was committed before they began, so two such transactions could each miss the
    /// other's writes). SQLite: a write, which takes the database's write lock before anything is
    /// read — a transaction that reads first and writes later can deadlock with another one doing the
    /// same, and one of them fails with "database is locked" instead of waiting.
    func lockForWriting(_ key: String, on kind: DatabaseKind) async throws {
        switch kind {
        case .postgres: try await sql().raw("SELECT pg_advisory_xact_lock(hashtextextended(\(bind: key), 0))").run()
        case .sqlite: try await sql().raw("UPDATE _fluent_migrations SET batch = batch WHERE 1 = 0").run()
        }
    }
}

extension SQLDatabase {
    /// Keeps account `userID` from being deleted until the transaction ends, and waits while it is
    /// being deleted: first in a transaction that writes the user's chats or messages, so that it
    /// takes its locks in the order an account's deletion does (the account's row, then its chats'
    /// rows, then their messages'), and the two wait for each other instead of deadlocking.
    /// PostgreSQL: `FOR KEY SHARE`, which no other writer of the account waits for. SQLite, with one
    /// writer at a time, needs nothing.
    func holdAccount(_ userID: UUID, on kind: DatabaseKind) async throws {
        guard kind == .postgres else { return }
        try await raw("SELECT 1 FROM users WHERE id = \(bind: userID) FOR KEY SHARE").run()
    }
}
