@testable import App
import Fluent
import FluentPostgresDriver
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import PostgresNIO
import Testing
import VaporTesting

/// Signing an account out everywhere (a Google takeover, an admin's password reset, a deactivation)
/// leaves nothing of its sessions alive: no session issued by a sign-in that overlapped it, no
/// cached account from before it, no open stream.
@Suite("Signing out everywhere")
struct SignOutTests {
    @Test("a sign-in whose password check overlaps a sign-out everywhere gets no session, in the API and the admin",
          arguments: TestDatabase.all)
    func signInRacingRevocation(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let accounts = try t.services.accounts
            // The password is checked; before the session is issued, the account is taken over.
            let checked = try await accounts.authenticate(email: session.user.email, password: testPassword, on: t.db)
            let current = try #require(try await User.find(checked.id, on: t.db))
            t.clock.advance(by: 2)
            try await accounts.signOutEverywhere(current, on: t.db)
            let tokensBefore = try await RefreshToken.query(on: t.db).count()
            await #expect(throws: AccountsError.invalidCredentials) {
                _ = try await t.services.sessions.startAfterPasswordCheck(for: checked, on: t.db)
            }
            #expect(try await RefreshToken.query(on: t.db).count() == tokensBefore, "no token issued after the revocation")

            let staff = try await User.fixture(isStaff: true, on: t.db)
            let checkedStaff = try await accounts.authenticate(email: staff.email, password: testPassword, on: t.db)
            try await accounts.signOutEverywhere(staff, on: t.db)
            let sessions = AdminSessions(sessions: try t.services.sessions, clock: t.clock, lifetime: .seconds(3600), secureCookies: true)
            await #expect(throws: AccountsError.invalidCredentials) { _ = try await sessions.start(for: checkedStaff, on: t.db) }
            #expect(try await AdminSession.query(on: t.db).count() == 0)

            // A sign-in after the revocation is a session like any other.
            #expect(try await t.login(email: session.user.email).status == .ok)
        }
    }

    @Test("an account change is announced once its transaction has committed: a takeover, an admin's edit, a reset",
          .enabled(if: TestDatabase.postgresURL != nil))
    func announcedAfterCommit() async throws {
        let url = try #require(TestDatabase.postgresURL)
        try await withTestApp(.postgres(url: url)) { t in
            let session = try await t.register()
            let id = try #require(UUID(uuidString: session.user.id))
            let schema = try #require(t.settings.database.searchPath?.first)
            // What another request would read at the moment of the announcement, on a connection of its own.
            let observer = try await CommittedReader.connect(url: url, schema: schema)
            let seen = NIOLockedValueBox<[CommittedReader.Account?]>([])
            try t.services.users.announceChanges { changed in
                guard changed == id else { return }
                seen.withLockedValue { $0.append(observer.account(changed)) }
            }
            let accounts = try t.services.accounts
            let user = try #require(try await User.find(id, on: t.db))
            let admin = try await User.fixture(isStaff: true, isSuperuser: true, on: t.db)
            let changes: [(String, () async throws -> Void)] = [
                ("sign out everywhere", { try await accounts.signOutEverywhere(user, on: t.db) }),
                ("password reset", { _ = try await accounts.resetPassword(of: user, to: "another good password", on: t.db) }),
                ("deactivation", {
                    _ = try await accounts.update(user, with: .init(name: "N", role: .basic, isStaff: false, isActive: false,
                                                                    isSuperuser: false), by: admin, on: t.db)
                }),
            ]
            for (what, change) in changes {
                t.clock.advance(by: 5)
                try await change()
                let committed = observer.account(id)
                #expect(seen.withLockedValue { $0.last } == committed, "\(what): announced before its commit")
                #expect(committed != nil)
            }
            await observer.close()
        }
    }

    @Test("a signed-out session's open streams end at once with an error event; a session from after it streams on",
          arguments: TestDatabase.all)
    func streamsEndWithTheirSession(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let bystander = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Streams")
            let theirs = try await t.createChat(token: bystander.access, title: "Theirs")
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                let other = try await EventStreamClient.open(base, "/api/chat/\(theirs.id)/messages/", token: bystander.access)
                t.clock.advance(by: 2)
                let user = try #require(try await User.find(UUID(uuidString: session.user.id), on: t.db))
                _ = try await t.services.accounts.resetPassword(of: user, to: "a brand new password", on: t.db)
                let events = try await stream.waitFor("the error event", timeout: .seconds(5)) { $0.contains { $0.type == "error" } }
                #expect(events.last?.json["status"] as? Int == 401)
                try await stream.waitForEnd(timeout: .seconds(5))

                // Signed in again, after the cut: streams.
                let fresh = try await t.login(email: session.user.email, password: "a brand new password").decoded(SessionBody.self)
                let again = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: fresh.access)
                #expect(again.status == .ok)
                // Deactivated: every stream of the account ends.
                let admin = try await User.fixture(isStaff: true, isSuperuser: true, on: t.db)
                let current = try #require(try await User.find(UUID(uuidString: session.user.id), on: t.db))
                _ = try await t.services.accounts.update(current, with: .init(name: "", role: .basic, isStaff: false, isActive: false,
                                                                               isSuperuser: false), by: admin, on: t.db)
                try await again.waitFor("the error event", timeout: .seconds(5)) { $0.contains { $0.type == "error" } }
                try await again.waitForEnd(timeout: .seconds(5))
                #expect(!other.hasEnded, "another account's stream goes on")
                other.close()
            }
        }
    }

    @Test("a session signed out on one instance ends its streams on the other", .enabled(if: TestDatabase.postgresURL != nil))
    func streamsEndOnEveryInstance() async throws {
        try await withTwoInstances(emulated: false) { a, b, _ in
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access, title: "Across")
            try await b.withLiveServer { baseB in
                let stream = try await EventStreamClient.open(baseB, "/api/chat/\(chat.id)/messages/", token: session.access)
                a.clock.advance(by: 2)
                b.clock.advance(by: 2)
                let user = try #require(try await User.find(UUID(uuidString: session.user.id), on: a.db))
                try await a.services.accounts.signOutEverywhere(user, on: a.db)
                try await stream.waitFor("the error event on the other instance", timeout: .seconds(5)) { $0.contains { $0.type == "error" } }
                try await stream.waitForEnd(timeout: .seconds(5))
            }
        }
    }
}

/// Reads what is committed in a PostgreSQL schema on a connection of its own, synchronously (from
/// a callback that must observe the database at the moment it is called).
final class CommittedReader: Sendable {
    private let connection: PostgresConnection
    private let schema: String

    private init(connection: PostgresConnection, schema: String) {
        self.connection = connection
        self.schema = schema
    }

    static func connect(url: String, schema: String) async throws -> CommittedReader {
        let configuration = try SQLPostgresConfiguration(url: url).coreConfiguration
        let connection = try await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration,
                                                               id: 99, logger: Logger(label: "observer")).get()
        return CommittedReader(connection: connection, schema: schema)
    }

    struct Account: Equatable {
        var sessionsRevokedAt: Double?
        var isActive: Bool
    }

    /// The user's revocation cut and active flag as committed now (waits on the connection's event loop).
    func account(_ id: UUID) -> Account? {
        let query = "SELECT sessions_revoked_at, is_active FROM \"\(schema)\".users WHERE id = '\(id.uuidString)'"
        guard let row = (try? connection.query(query, []).wait())?.rows.first?.makeRandomAccess() else { return nil }
        let cut = try? row[0].decode(Date?.self)
        return Account(sessionsRevokedAt: cut?.timeIntervalSince1970, isActive: (try? row[1].decode(Bool.self)) ?? false)
    }

    func close() async {
        try? await connection.close()
    }
}
