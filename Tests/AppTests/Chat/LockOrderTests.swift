import AnthropicEmulator
@testable import App
import FluentPostgresDriver
import Foundation
import Logging
import NIOPosix
import PostgresNIO
import Testing

/// Writes to a chat take their locks in the order deletions do — the account's row, the chat's, then
/// its messages' — so that two of them can wait for each other but never deadlock. (PostgreSQL only:
/// SQLite has one writer at a time.)
@Suite("Lock order")
struct LockOrderTests {
    /// Seen in the hour-long soak: `DELETE /api/chat/{id}/` answered 500 with PostgreSQL's
    /// `deadlock detected`. The deletion locks the chat's row and then, cascading, its messages; the
    /// end of a reply locked its message and then the chat's row (for its activity).
    @Test("a chat deleted while its reply is being stored: the deletion locks the chat, then its messages, and the reply's end waits for the chat first",
          .enabled(if: TestDatabase.postgresURL != nil))
    func deletionAndReplyEnd() async throws {
        let url = try #require(TestDatabase.postgresURL)
        try await withTestApp(.postgres(url: url), emulated: true) { t in
            let paused = try await Self.pausedReply(t)
            let (userID, chatID) = (paused.userID, paused.chatID)
            try await Self.deleteInSteps(url, paused, locking: "SELECT id FROM chats WHERE id = \(chatID) FOR UPDATE",
                                         then: ["SELECT id FROM messages WHERE chat_id = \(chatID) FOR UPDATE NOWAIT"],
                                         deleting: "DELETE FROM chats WHERE id = \(chatID)",
                                         // Its message gone, the reply's end counts its usage for the user all the same.
                                         counted: "SELECT replies AS n FROM usage_daily WHERE user_id = \(userID)")
            #expect(try await t.send(.GET, "/api/chat/\(chatID.lowercased)/", token: paused.access).status == .notFound)
        }
    }

    /// Found in review: the end of a reply locked its chat, then its message, then (adding a day's
    /// first usage row for the user) the account's row; an account's deletion locks the account and
    /// then, cascading, its chats and their messages.
    @Test("an account deleted while its reply is being stored: the reply's end waits for the account first, holding nothing",
          .enabled(if: TestDatabase.postgresURL != nil))
    func accountDeletionAndReplyEnd() async throws {
        let url = try #require(TestDatabase.postgresURL)
        try await withTestApp(.postgres(url: url), emulated: true) { t in
            let paused = try await Self.pausedReply(t)
            let (userID, chatID) = (paused.userID, paused.chatID)
            try await Self.deleteInSteps(url, paused, locking: "SELECT id FROM users WHERE id = \(userID) FOR UPDATE",
                                         then: ["SELECT id FROM chats WHERE user_id = \(userID) FOR UPDATE NOWAIT",
                                                "SELECT id FROM messages WHERE chat_id = \(chatID) FOR UPDATE NOWAIT"],
                                         deleting: "DELETE FROM users WHERE id = \(userID)",
                                         // Its usage is kept without the account.
                                         counted: "SELECT CAST(COALESCE(SUM(replies), 0) AS BIGINT) AS n FROM usage_daily WHERE user_id IS NULL")
        }
    }

    /// A deletion in progress, a step at a time, on a connection of its own: it takes its first lock
    /// (`locking`), lets the paused reply end and waits until the reply's end is blocked on it, then
    /// asks for its next locks with `NOWAIT` — an error at once where the reply's end holds one while
    /// it waits — deletes, commits, and waits until `counted` answers 1.
    static func deleteInSteps(_ url: String, _ paused: PausedChat, locking first: PostgresQuery, then rest: [PostgresQuery],
                              deleting delete: PostgresQuery, counted: PostgresQuery) async throws {
        try await SideConnection.with(url, schema: paused.schema) { deleter in
            try await deleter.run("BEGIN")
            try await deleter.run(first)
            paused.emulator.openGate()
            try await waitUntil("the reply's end to wait for the deletion") { try await deleter.count(Self.blockedByMe) > 0 }
            for query in rest {
                do {
                    try await deleter.run(query)
                } catch {
                    Issue.record("the reply's end holds a lock the deletion needs (\(query.sql)): \(String(reflecting: error))")
                    throw error
                }
            }
            try await deleter.run(delete)
            try await deleter.run("COMMIT")
            try await waitUntil("the reply's usage to be counted") { try await deleter.count(counted) == 1 }
        }
    }

    /// A user's new chat whose reply the emulator holds after its first piece, on PostgreSQL.
    static func pausedReply(_ t: TestApp) async throws -> PausedChat {
        let emulator = try #require(t.emulator)
        let schema = try #require(t.settings.database.searchPath?.first)
        emulator.enqueue(.reply(Script.Reply(["Half", " the rest"], pauseAfter: 1)))
        let session = try await t.register()
        let chat = try await t.createChat(token: session.access, content: "Go")
        try await waitUntil("the reply to pause") { emulator.pausedCount > 0 }
        return PausedChat(emulator: emulator, schema: schema, access: session.access,
                          userID: try #require(UUID(uuidString: session.user.id)), chatID: try #require(UUID(uuidString: chat.id)))
    }

    struct PausedChat {
        let emulator: AnthropicEmulator
        let schema: String
        let access: String
        let userID: UUID
        let chatID: UUID
    }

    /// Locks other sessions are waiting for, held by this one.
    static let blockedByMe: PostgresQuery = "SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"

    @Test("a deadlock PostgreSQL breaks is the database's state, not the request's fault: 503 database_unavailable, worth trying again",
          .enabled(if: TestDatabase.postgresURL != nil))
    func deadlockIsTransient() async throws {
        let url = try #require(TestDatabase.postgresURL)
        try await SideConnection.with(url, schema: "public") { first in
            try await SideConnection.with(url, schema: "public") { second in
                let keys = (Int64.random(in: 1...Int64.max / 2), Int64.random(in: 1...Int64.max / 2))
                try await first.run("BEGIN")
                try await second.run("BEGIN")
                try await first.run("SELECT pg_advisory_xact_lock(\(keys.0))")
                try await second.run("SELECT pg_advisory_xact_lock(\(keys.1))")
                async let firstWaits: Void = first.run("SELECT pg_advisory_xact_lock(\(keys.1))")
                try await waitUntil("the first to wait for the second") { try await second.count(Self.blockedByMe) > 0 }
                let secondError: (any Error)?
                do {
                    try await second.run("SELECT pg_advisory_xact_lock(\(keys.0))")
                    secondError = nil
                } catch {
                    secondError = error
                }
                let firstError: (any Error)?
                do {
                    try await firstWaits
                    firstError = nil
                } catch {
                    firstError = error
                }
                let broken = try #require(firstError ?? secondError, "PostgreSQL broke the deadlock")
                #expect((firstError == nil) != (secondError == nil), "one transaction was chosen")
                let problem = try #require(DatabaseUnavailable.problem(for: broken), "\(String(reflecting: broken))")
                #expect(problem.status == .serviceUnavailable && problem.code == "database_unavailable")
                #expect(DatabaseUnavailable.matches(broken))
            }
        }
    }
}

/// A PostgreSQL connection of the test's own, outside the application's pool, on `schema`.
struct SideConnection {
    let connection: PostgresConnection

    /// Runs `body` with a connection that is closed when it ends, however it ends.
    static func with<T>(_ url: String, schema: String, _ body: (SideConnection) async throws -> T) async throws -> T {
        let configuration = try SQLPostgresConfiguration(url: url).coreConfiguration
        let connection = try await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration,
                                                              id: 98, logger: Logger(label: "side-connection"))
        let side = SideConnection(connection: connection)
        do {
            try await side.run("SELECT set_config('search_path', \(schema), false)")
            let result = try await body(side)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    func run(_ query: PostgresQuery) async throws {
        _ = try await connection.query(query, logger: connection.logger).collect()
    }

    /// The first row's `n`, or 0 without rows.
    func count(_ query: PostgresQuery) async throws -> Int {
        for try await row in try await connection.query(query, logger: connection.logger) {
            return try row.decode(Int.self)
        }
        return 0
    }
}
