@testable import App
import Fluent
import Foundation
import SQLKit
import SQLiteNIO
import Testing
import VaporTesting

@Suite("Maintenance commands")
struct MaintenanceCommandTests {
    @Test("cleanup counts in a dry run and deletes idle chats and expired tokens with --execute", arguments: TestDatabase.all)
    func cleanup(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let old = try await t.createChat(token: session.access, title: "old")
            let fresh = try await t.createChat(token: session.access, title: "fresh")
            let oldChat = try #require(try await Chat.find(UUID(uuidString: old.id), on: t.db))
            try await Message(chatID: try oldChat.requireID(), sequence: 1, role: .user, content: "hello", status: .complete, model: "test").create(on: t.db)
            oldChat.activityAt = t.clock.now().addingTimeInterval(-91 * 86_400)
            try await oldChat.save(on: t.db)
            let expired = try #require(try await RefreshToken.query(on: t.db).first())
            let live = RefreshToken(id: UUID(), userID: expired.$user.id, familyID: UUID(), expiresAt: t.clock.now().addingTimeInterval(3600),
                                    accessJTI: UUID().lowercased, signedInAt: t.clock.now())
            try await live.create(on: t.db)
            expired.expiresAt = t.clock.now().addingTimeInterval(-1)
            try await expired.save(on: t.db)

            let dryRun = try await t.run("cleanup")
            #expect(dryRun.contains("(90 days): 1, holding 1 message(s)"))
            #expect(dryRun.contains("Expired refresh tokens: 1"))
            #expect(dryRun.contains("Dry run"))
            #expect(try await Chat.query(on: t.db).count() == 2)
            #expect(try await RefreshToken.query(on: t.db).count() == 2)

            #expect(try await t.run("cleanup", ["--days", "100"]).contains("(100 days): 0"))

            let executed = try await t.run("cleanup", ["--execute"])
            #expect(executed.contains("Deleted 1 chat(s), 1 message(s), 1 refresh token(s)"))
            #expect(try await Chat.find(UUID(uuidString: old.id), on: t.db) == nil)
            #expect(try await Chat.find(UUID(uuidString: fresh.id), on: t.db) != nil)
            #expect(try await Message.query(on: t.db).filter(\.$chat.$id == oldChat.requireID()).count() == 0)
            #expect(try await RefreshToken.find(live.id, on: t.db) != nil)
            #expect(try await RefreshToken.find(expired.id, on: t.db) == nil)

            await #expect(throws: (any Error).self) { try await t.run("cleanup", ["--days", "0"]) }
        }
    }

    @Test("backup writes a consistent SQLite copy that opens and holds the data, and never overwrites")
    func sqliteBackup() async throws {
        try await withTestApp(.sqlite) { t in
            let session = try await t.register(email: "kept@example.com")
            _ = try await t.createChat(token: session.access, title: "Kept chat")
            let file = try await t.uploaded(TestFiles.png, name: "kept.png", token: session.access)
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("backup-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            let path = folder.appendingPathComponent("copy.sqlite3").path

            let output = try await t.run("backup", ["--output", path])
            #expect(output.contains("Backed up"))
            #expect(FileManager.default.fileExists(atPath: path))

            let connection = try await SQLiteConnection.open(storage: .file(path: path))
            let users = try await connection.query("SELECT email FROM users")
            let chats = try await connection.query("SELECT title FROM chats")
            let files = try await connection.query("SELECT f.name, c.data FROM files f JOIN file_chunks c ON c.file_id = f.id")
            try await connection.close()
            #expect(files.compactMap { $0.column("name")?.string } == ["kept.png"], "the backup holds the files (\(file.id))")
            #expect(files.first?.column("data")?.blob.map { Data(buffer: $0) } == TestFiles.png)
            #expect(users.compactMap { $0.column("email")?.string } == ["kept@example.com"])
            #expect(chats.compactMap { $0.column("title")?.string } == ["Kept chat"])

            await #expect(throws: (any Error).self) { try await t.run("backup", ["--output", path]) }
        }
    }

    @Test("backup on PostgreSQL prints the pg_dump command", .enabled(if: TestDatabase.postgresURL != nil))
    func postgresBackup() async throws {
        try await withTestApp(.postgres(url: try #require(TestDatabase.postgresURL))) { t in
            let output = try await t.run("backup")
            #expect(output.contains("pg_dump --format=custom"))
            #expect(!output.contains("chat_test:chat_test"), "no password printed")
        }
    }

    @Test("check passes on a sound setup, lists production warnings, and fails with --deploy", arguments: TestDatabase.all)
    func checkPasses(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let output = try await t.run("check")
            #expect(output.contains("ok: database reachable"))
            #expect(output.contains("ok: migrations applied"))
            #expect(output.contains("no errors"))
            #expect(output.contains("SECURE_SSL_REDIRECT is off"))
            await #expect(throws: (any Error).self) { try await t.run("check", ["--deploy"]) }
        }
        let production = [
            "SECURE_SSL_REDIRECT": "true", "SECURE_HSTS_SECONDS": "31536000", "TRUSTED_PROXIES": "127.0.0.1",
            "ALLOWED_HOSTS": "chat.example.com", "ANTHROPIC_API_KEY": "sk-ant-test",
        ]
        try await withTestApp(database, settings: production) { t in
            let output = try await t.run("check", ["--deploy"])
            #expect(output.contains("no errors (0 warning(s))"))
        }
    }

    @Test("check fails, naming the reason, when the database cannot be reached or migrations are missing")
    func checkFails() async throws {
        var environment = TestSettings.environment(.sqlite)
        environment["DATABASE_URL"] = "postgres://nobody:secret@127.0.0.1:1/none?sslmode=disable"
        let unreachable = try await runCheck(environment)
        #expect(unreachable.failed)
        #expect(unreachable.output.contains("database unreachable"))
        #expect(!unreachable.output.contains("secret"))
        #expect(unreachable.output.contains("Connection refused"), "the reason, not PostgreSQL's generic description")

        if let url = TestDatabase.postgresURL, var missing = URLComponents(string: url) {
            missing.path = "/no_such_database_\(UInt32.random(in: 0...UInt32.max))"
            environment["DATABASE_URL"] = try #require(missing.string)
            let absent = try await runCheck(environment)
            #expect(absent.failed)
            #expect(absent.output.contains("PostgreSQL: database \"\(missing.path.dropFirst())\" does not exist (SQLSTATE 3D000)"), "\(absent.output)")
        }

        environment["DATABASE_URL"] = "sqlite://:memory:"
        environment["AUTO_MIGRATE"] = "false"
        let unmigrated = try await runCheck(environment)
        #expect(unmigrated.failed)
        #expect(unmigrated.output.contains("migration(s) pending and AUTO_MIGRATE is off"))
    }

    /// Runs `check` on an application that was configured but never migrated.
    private func runCheck(_ environment: [String: String]) async throws -> (output: String, failed: Bool) {
        let settings = try Settings(environment: environment)
        let app = try await Application.make(.testing)
        try await configure(app, settings: settings)
        let console = ScriptedConsole()
        var failed = false
        do { try await runCommand("check", on: app, console: console) } catch { failed = true }
        try await app.asyncShutdown()
        return (console.output, failed)
    }
}

@Suite("Maintenance commands across instances", .serialized, .enabled(if: TestDatabase.postgresURL != nil))
struct MaintenanceAcrossInstancesTests {
    @Test("cleanup tells every instance: a stream open on a chat it deletes ends there")
    func cleanupEndsStreamsElsewhere() async throws {
        try await withTwoInstances(emulated: false) { a, b, _ in
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access, title: "Idle")
            let stored = try #require(try await Chat.find(UUID(uuidString: chat.id), on: a.db))
            stored.activityAt = a.clock.now().addingTimeInterval(-91 * 86_400)
            try await stored.save(on: a.db)
            try await b.withLiveServer { baseB in
                let stream = try await EventStreamClient.open(baseB, "/api/chat/\(chat.id)/messages/", token: session.access)
                let output = try await a.run("cleanup", ["--execute"])
                #expect(output.contains("Deleted 1 chat(s)"))
                let events = try await stream.waitFor("the stream to hear of it", timeout: .seconds(5)) { $0.contains { $0.type == "error" } }
                #expect(events.last?.json["status"] as? Int == 410)
            }
        }
    }
}
