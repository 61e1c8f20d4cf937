@testable import App
import Fluent
import Foundation
import Testing
import VaporTesting

@Suite("Commands")
struct CommandTests {
    @Test("migrate applies what is pending and is idempotent; --revert undoes the last batch", arguments: TestDatabase.all)
    func migrate(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            // withTestApp migrated already
            let again = try await t.run("migrate")
            #expect(again.contains("No migrations to apply"))

            let reverted = try await t.run("migrate", ["--revert", "--yes"])
            #expect(reverted.contains("Reverted"))
            await #expect(throws: (any Error).self) { try await User.query(on: t.db).count() }

            let applied = try await t.run("migrate")
            #expect(applied.contains("CreateUsers"))
            #expect(try await User.query(on: t.db).count() == 0)
            #expect(try await t.run("migrate").contains("No migrations to apply"))
        }
    }

    @Test("migrate --revert asks first and does nothing when refused")
    func revertNeedsConfirmation() async throws {
        try await withTestApp(.sqlite) { t in
            let output = try await t.run("migrate", ["--revert"], answers: ["n"])
            #expect(output.contains("Nothing was reverted"))
            #expect(try await User.query(on: t.db).count() == 0)
        }
    }

    @Test("createsuperuser --email --password-stdin makes a staff superuser who can sign in", arguments: TestDatabase.all)
    func superuserFromStdin(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let output = try await t.run("createsuperuser", ["--email", "Admin@Example.com", "--password-stdin"], answers: [testPassword])
            #expect(output.contains("admin@example.com"))
            let admin = try #require(try await User.find(email: "admin@example.com", on: t.db))
            #expect(admin.isStaff && admin.isSuperuser && admin.isActive)
            #expect(try await t.login(email: "admin@example.com").status == .ok)
        }
    }

    @Test("createsuperuser --noinput reads CHAT_SUPERUSER_EMAIL and CHAT_SUPERUSER_PASSWORD", arguments: TestDatabase.all)
    func superuserNoInput(_ database: TestDatabase) async throws {
        let environment = ["CHAT_SUPERUSER_EMAIL": "ops@example.com", "CHAT_SUPERUSER_PASSWORD": testPassword]
        try await withTestApp(database, settings: environment) { t in
            _ = try await t.run("createsuperuser", ["--noinput"])
            let admin = try #require(try await User.find(email: "ops@example.com", on: t.db))
            #expect(admin.isSuperuser)
        }
    }

    @Test("createsuperuser asks for the email and the password twice, re-asking on mistakes")
    func superuserInteractive() async throws {
        try await withTestApp(.sqlite) { t in
            let answers = ["not an email", "boss@example.com", testPassword, "typo", "12345678", "12345678", testPassword, testPassword]
            let output = try await t.run("createsuperuser", answers: answers)
            #expect(output.contains("valid email"))
            #expect(output.contains("do not match"))
            #expect(output.contains("entirely numeric"))
            #expect(try await User.find(email: "boss@example.com", on: t.db)?.isSuperuser == true)
        }
    }

    @Test("createsuperuser refuses a taken email, a weak password and missing input, storing nothing")
    func superuserRefusals() async throws {
        try await withTestApp(.sqlite) { t in
            _ = try await User.fixture(email: "taken@example.com", on: t.db)
            await #expect(throws: CommandFailure.self) {
                _ = try await t.run("createsuperuser", ["--email", "taken@example.com", "--password-stdin"], answers: [testPassword])
            }
            await #expect(throws: CommandFailure.self) {
                _ = try await t.run("createsuperuser", ["--email", "weak@example.com", "--password-stdin"], answers: ["123"])
            }
            await #expect(throws: CommandFailure.self) {
                _ = try await t.run("createsuperuser", ["--noinput", "--email", "nopass@example.com"])
            }
            #expect(try await t.userCount() == 1)
        }
    }
}

@Suite("Start-up")
struct StartupTests {
    /// The `chat-server` executable `swift test` built beside the test bundle.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("chat-server")
    }

    @Test("a bad setting stops start-up with one line naming the key")
    func badSettingStopsStartup() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.executable.path), "build chat-server first: \(Self.executable.path)")
        let process = Process()
        process.executableURL = Self.executable
        process.arguments = ["serve", "--no-migrate"]
        process.currentDirectoryURL = FileManager.default.temporaryDirectory
        process.environment = ["DEBUG": "true", "DATABASE_URL": "mysql://root@localhost/chat", "PATH": "/usr/bin:/bin"]
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus != 0)
        #expect(message == "chat-server: configuration error: DATABASE_URL: unsupported scheme 'mysql'; use sqlite:// or postgres://\n")
    }
}
