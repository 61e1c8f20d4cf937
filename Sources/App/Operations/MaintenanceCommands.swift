import Fluent
import Foundation
import SQLKit
import Vapor

/// `cleanup`: deletes chats (with their messages) that have had no activity for `--days` days,
/// refresh tokens and admin sessions past their expiry, and abandoned sign-in attempts at providers. A dry run that only
/// counts unless `--execute` is given.
struct CleanupCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "days", help: "Delete chats with no activity for this many days (default 90).")
        var days: Int?
        @Flag(name: "execute", help: "Delete for real; without it nothing is deleted.")
        var execute: Bool
        init() {}
    }

    let clock: any WallClock
    /// Where chats go (``ChatService/removeIdle(before:on:)``): their streams end, on every instance.
    let chats: ChatService

    var help: String { "Deletes chats idle for --days days (default 90) and expired sign-in records; a dry run unless --execute." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let days = signature.days ?? 90
        guard days >= 1 else { throw CommandFailure(description: "--days must be at least 1") }
        let db = context.application.db
        let now = clock.now()
        let cutoff = now.addingTimeInterval(-Double(days) * 86_400)

        // What goes: each query made on the database (or transaction) it runs on, so that the
        // counts and the deletion select the same rows.
        let expiredTokens = { @Sendable (db: any Database) in RefreshToken.query(on: db).filter(\.$expiresAt < now) }
        let expiredAttempts = { @Sendable (db: any Database) in SignInAttempt.query(on: db).filter(\.$expiresAt < now) }
        let expiredCodes = { @Sendable (db: any Database) in SignInCode.query(on: db).filter(\.$expiresAt < now) }
        let expiredSessions = { @Sendable (db: any Database) in AdminSessions.expired(before: now, on: db) }

        let chatCount = try await Chat.query(on: db).filter(\.$activityAt < cutoff).count()
        let messageCount = try await Message.query(on: db)
            .join(Chat.self, on: \Message.$chat.$id == \Chat.$id)
            .filter(Chat.self, \.$activityAt < cutoff)
            .count()
        let tokenCount = try await expiredTokens(db).count()
        let attemptCount = try await expiredAttempts(db).count() + (try await expiredCodes(db).count())
        let adminSessionCount = try await expiredSessions(db).count()

        let console = context.console
        console.print("Chats with no activity since \(cutoff.formatted(.iso8601)) (\(days) days): \(chatCount), holding \(messageCount) message(s)")
        console.print("Expired refresh tokens: \(tokenCount)")
        console.print("Expired sign-in attempts: \(attemptCount)")
        console.print("Expired admin sessions: \(adminSessionCount)")
        guard signature.execute else {
            return console.print("Dry run: nothing was deleted. Run again with --execute to delete.")
        }
        // Messages go with their chat (ON DELETE CASCADE); the other instances are told, so that
        // streams open on those chats end (this process's bus connects for it, and sends what it
        // queued when the process shuts down).
        await chats.bus.start()
        _ = try await chats.removeIdle(before: cutoff, on: db)
        try await db.transaction { db in
            try await expiredTokens(db).delete()
            try await expiredAttempts(db).delete()
            try await expiredCodes(db).delete()
            try await expiredSessions(db).delete()
            _ = try await LoginClients.forget(before: now.addingTimeInterval(-LoginClients.memory), on: db)
        }
        context.application.logger.notice("cleanup deleted \(chatCount) chat(s), \(messageCount) message(s), \(tokenCount) refresh token(s), \(attemptCount) sign-in attempt(s)")
        console.print("Deleted \(chatCount) chat(s), \(messageCount) message(s), \(tokenCount) refresh token(s) and \(attemptCount) sign-in attempt(s).")
    }
}

/// `backup`: SQLite — an online, consistent copy of the database (`VACUUM INTO`, which reads one
/// snapshot while the server keeps serving) to a new file; PostgreSQL — the `pg_dump` line to use.
struct BackupCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "output", short: "o", help: "Where to write the copy (SQLite); default backups/chat-YYYYMMDD-HHMMSS.sqlite3.")
        var path: String?
        init() {}
    }

    let database: DatabaseSettings
    /// Files kept in a directory are copied beside the database copy (those in the database are in it).
    let files: FileSettings.Storage
    let clock: any WallClock

    var help: String { "Copies the SQLite database (and a file directory) while the server runs; for PostgreSQL, prints the pg_dump command." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let console = context.console
        let stamp = Self.stamp(clock.now())
        if case .postgres = database.location {
            console.print("This database is PostgreSQL; back it up with pg_dump (the password from PGPASSWORD or ~/.pgpass):")
            console.print("  pg_dump --format=custom --no-owner --file=chat-\(stamp).dump \"$DATABASE_URL\"")
            console.print("Restore into an empty database with:  pg_restore --no-owner --dbname=\"$DATABASE_URL\" chat-\(stamp).dump")
            if case .directory(let directory) = files {
                console.print("Files live in \(directory) (FILE_STORAGE): copy that directory too.")
            }
            return
        }
        let path = signature.path ?? "backups/chat-\(stamp).sqlite3"
        let target = URL(fileURLWithPath: path)
        let files = FileManager.default
        guard !files.fileExists(atPath: target.path) else {
            throw CommandFailure(description: "\(path) already exists; choose a new file")
        }
        try files.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try await context.application.db.sql().raw("VACUUM INTO \(bind: target.path)").run()
        let size = (try? files.attributesOfItem(atPath: target.path)[.size] as? Int) ?? 0
        console.print("Backed up \(DatabaseSetup.describe(database)) to \(path) (\(size) bytes).")
        if case .directory(let directory) = self.files {
            // Copied after the database: a file uploaded in between is an extra file, never a missing one.
            try files.copyItem(atPath: directory, toPath: path + ".files")
            console.print("Copied the files of \(directory) to \(path).files.")
        }
        console.print("To restore: stop the server and put that file in place of the database file.")
    }

    static func stamp(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let numbers = [parts.year, parts.month, parts.day, parts.hour, parts.minute, parts.second].map { $0 ?? 0 }
        return String(format: "%04d%02d%02d-%02d%02d%02d", numbers[0], numbers[1], numbers[2], numbers[3], numbers[4], numbers[5])
    }
}

/// `check`: validates what `chat-server` can only know at run time — the database answers, its
/// migrations are applied — and, like Django's `check --deploy`, lists settings unfit for
/// production. Exits non-zero on an error, and with `--deploy` on a warning too.
struct CheckCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Flag(name: "deploy", help: "Treat production warnings (DEBUG, TLS, hosts, keys) as failures.")
        var deploy: Bool
        init() {}
    }

    let settings: Settings

    var help: String { "Checks the settings and the database; non-zero exit with the reasons when something is wrong." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let console = context.console
        var errors: [String] = []
        let app = context.application

        do {
            try await app.db.sql().raw("SELECT 1").run()
            console.print("ok: database reachable (\(DatabaseSetup.describe(settings.database)))")
            let pending = try await MigrationRunner.pending(on: app)
            if pending.isEmpty {
                console.print("ok: migrations applied")
            } else if settings.autoMigrate {
                console.print("note: \(pending.count) migration(s) pending; `serve` applies them at start")
            } else {
                errors.append("\(pending.count) migration(s) pending and AUTO_MIGRATE is off: run `chat-server migrate`")
            }
        } catch {
            errors.append("database unreachable (\(DatabaseSetup.describe(settings.database))): \(DatabaseSetup.describe(error))")
        }

        let warnings = Self.deployWarnings(settings)
        for note in Self.deployNotes(settings) { console.print("note: \(note)") }
        for warning in warnings { console.warning("warning: \(warning)") }
        for error in errors { console.error("error: \(error)") }
        let failures = errors.count + (signature.deploy ? warnings.count : 0)
        guard failures == 0 else {
            throw CommandFailure(description: "check failed: \(errors.count) error(s), \(warnings.count) warning(s)")
        }
        console.print("System check identified no errors (\(warnings.count) warning(s)).")
    }

    /// What a production deployment should change.
    static func deployWarnings(_ settings: Settings) -> [String] {
        var warnings: [String] = []
        let protection = settings.protection
        if settings.debug { warnings.append("DEBUG is on: error bodies show internal messages; set DEBUG=false in production") }
        if case .developmentFile = settings.secretKeySource {
            warnings.append("SECRET_KEY is a generated development key; set a random SECRET_KEY of 32+ characters")
        }
        if settings.allowedHosts.contains("*") { warnings.append("ALLOWED_HOSTS allows any host; list the names the service answers to") }
        if !protection.sslRedirect { warnings.append("SECURE_SSL_REDIRECT is off: plain HTTP is served; turn it on behind TLS") }
        if protection.hstsSeconds == 0 { warnings.append("SECURE_HSTS_SECONDS is 0: browsers are not told to insist on HTTPS") }
        if (protection.sslRedirect || protection.hstsSeconds > 0), protection.trustedProxies.isEmpty {
            warnings.append("TLS settings are on but TRUSTED_PROXIES is empty, so no request is seen as HTTPS; list the TLS proxy")
        }
        if !protection.rateLimitsEnabled { warnings.append("RATE_LIMIT_ENABLED is off: nothing limits guessing or spending") }
        if settings.models.providers.isEmpty {
            warnings.append("no model provider is configured (ANTHROPIC_API_KEY, OPENAI_BASE_URL or PROVIDERS): replies come from the offline provider")
        }
        for origin in settings.corsAllowedOrigins where origin.hasPrefix("http://") && !origin.contains("localhost") && !origin.contains("127.0.0.1") {
            warnings.append("CORS_ALLOWED_ORIGINS has a plain-HTTP origin (\(origin))")
        }
        if !settings.debug, settings.host == "0.0.0.0" || settings.host == "::", protection.trustedProxies.isEmpty {
            warnings.append("the server listens on every interface with no TRUSTED_PROXIES: put it behind the TLS proxy and list it")
        }
        return warnings
    }

    /// What production does without being told, said so that nobody is surprised.
    static func deployNotes(_ settings: Settings) -> [String] {
        var notes: [String] = []
        if settings.corsAllowedOrigins.isEmpty {
            notes.append("CORS_ALLOWED_ORIGINS is not set: no other origin may call the API (the web chat at / needs none); name a separate frontend's origin there")
        }
        if settings.frontendURL == nil {
            notes.append("FRONTEND_URL is not set: sign-ins through providers return to this server's web chat (/)")
        }
        return notes
    }
}
