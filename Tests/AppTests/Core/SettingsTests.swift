@testable import App
import Foundation
import Testing

@Suite("Settings")
struct SettingsTests {
    let production = ["SECRET_KEY": TestSettings.secretKey, "ALLOWED_HOSTS": "chat.example.com"]

    private func settingsError(_ overrides: [String: String]) -> SettingsError? {
        var environment = production
        environment.merge(overrides) { $1 }
        do {
            _ = try Settings(environment: environment)
            return nil
        } catch {
            return error
        }
    }

    @Test("production defaults: SQLite, loopback port 8000, no CORS and no frontend until named, 15-minute and 7-day tokens")
    func defaults() throws {
        let settings = try Settings(environment: production)
        #expect(settings.debug == false)
        #expect(settings.database.location == .sqliteFile(path: "db.sqlite3"))
        #expect(settings.host == "127.0.0.1")
        #expect(settings.port == 8000)
        #expect(settings.corsAllowedOrigins.isEmpty)
        #expect(settings.frontendURL == nil)
        #expect(try settings.defaultSignInReturn().url == "/")
        #expect(settings.accessTokenLifetime == .seconds(15 * 60))
        #expect(settings.refreshTokenLifetime == .seconds(7 * 86_400))
        #expect(settings.maxBodySize == 1 << 20)
        #expect(settings.autoMigrate)
        #expect(settings.logLevel == .info)
        #expect(settings.secretKeySource == .environment)
    }

    @Test("files: defaults, and every FILE_* value out of range stops start-up naming its key (a size too large to count included)")
    func fileSettings() throws {
        let files = try Settings(environment: production).files
        #expect(files.maxSize == 20 << 20 && files.storagePerUser == 1 << 30 && files.storage == .database)
        #expect(files.pdfMaxPages == 100 && files.uploadTimeout == .seconds(300) && files.unattachedLifetime == .seconds(86_400))
        #expect(try Settings(environment: production.merging(["FILE_STORAGE": "directory:/srv/files"]) { $1 }).files.storage == .directory("/srv/files"))
        let refused: [(String, String)] = [
            ("FILE_STORAGE", "s3://bucket"), ("FILE_STORAGE", "directory:"), ("FILE_MAX_SIZE", "0"), ("FILE_MAX_SIZE", "-1mb"),
            ("FILE_MAX_SIZE", "99999999999999999gb"), ("FILE_STORAGE_PER_USER", "9223372036854775807kb"), ("FILE_PDF_MAX_PAGES", "0"),
            ("FILE_PDF_MAX_PAGES", "100000"), ("FILE_PROCESS_TIMEOUT", "0"), ("FILE_UPLOAD_TIMEOUT", "nan"), ("FILE_UNATTACHED_TTL", "-1d"),
        ]
        for (key, value) in refused {
            #expect(settingsError([key: value])?.key == key, "\(key)=\(value)")
        }
    }

    @Test("development keeps the original's frontend on localhost:5173; a bad FRONTEND_URL stops start-up")
    func developmentFrontend() throws {
        let settings = try Settings(environment: ["DEBUG": "true", "SECRET_KEY": TestSettings.secretKey, "DATABASE_URL": "sqlite://:memory:"])
        #expect(settings.corsAllowedOrigins == ["http://localhost:5173"])
        #expect(settings.frontendURL == "http://localhost:5173")
        #expect(settings.host == "127.0.0.1", "a development server is reachable from this machine only")
        #expect(try settings.defaultSignInReturn().url == "http://localhost:5173")
        #expect(settingsError(["FRONTEND_URL": "https://user@app.example.com/"])?.key == "FRONTEND_URL")
        #expect(settingsError(["FRONTEND_URL": "https://app.example.com/#x"])?.key == "FRONTEND_URL")
    }

    @Test("values are parsed into their types")
    func parsing() throws {
        var environment = production
        environment.merge([
            "DEBUG": "yes", "PORT": "9000", "ACCESS_TOKEN_LIFETIME": "90s", "REFRESH_TOKEN_LIFETIME": "12h",
            "MAX_BODY_SIZE": "512kb", "CORS_ALLOWED_ORIGINS": "https://a.example.com, http://localhost:3000",
            "DATABASE_URL": "postgresql://chat:secret@db.internal:5433/chat?sslmode=require", "DATABASE_POOL_SIZE": "20",
            "LOG_LEVEL": "DEBUG", "AUTO_MIGRATE": "false",
        ]) { $1 }
        let settings = try Settings(environment: environment)
        #expect(settings.debug)
        #expect(settings.port == 9000)
        #expect(settings.accessTokenLifetime == .seconds(90))
        #expect(settings.refreshTokenLifetime == .seconds(12 * 3600))
        #expect(settings.maxBodySize == 512 * 1024)
        #expect(settings.corsAllowedOrigins == ["https://a.example.com", "http://localhost:3000"])
        #expect(settings.database.location == .postgres(url: "postgresql://chat:secret@db.internal:5433/chat?sslmode=require"))
        #expect(settings.database.poolSize == 20)
        #expect(settings.logLevel == .debug)
        #expect(!settings.autoMigrate)
    }

    @Test("a bad value names its key and what is wrong", arguments: [
        ("DATABASE_URL", "mysql://root@localhost/chat", "unsupported scheme"),
        ("DATABASE_URL", "postgres://chat@localhost/chat?sslmode=sometimes", "sslmode"),
        ("DATABASE_URL", "postgres://localhost/chat", "no user"),
        ("DATABASE_URL", "sqlite://", "file path"),
        ("PORT", "eighty", "whole number"),
        ("PORT", "70000", "between"),
        ("DEBUG", "maybe", "true or false"),
        ("ACCESS_TOKEN_LIFETIME", "soon", "duration"),
        ("REFRESH_TOKEN_LIFETIME", "5m", "longer than ACCESS_TOKEN_LIFETIME"),
        ("MAX_BODY_SIZE", "huge", "size"),
        ("CORS_ALLOWED_ORIGINS", "localhost:5173", "origin"),
        ("FRONTEND_URL", "ftp://files.example.com", "http"),
        ("LOG_LEVEL", "loud", "one of"),
        ("SECRET_KEY", "short", "at least 32"),
        ("BCRYPT_COST", "3", "between"),
        ("DATABASE_POOL_SIZE", "0", "between"),
    ])
    func badValue(key: String, value: String, message: String) {
        let error = settingsError([key: value])
        #expect(error?.key == key)
        #expect(error?.problem.contains(message) == true, "\(String(describing: error))")
        #expect(error?.description.hasPrefix("\(key): ") == true)
        #expect(error?.description.contains("\n") == false)
    }

    @Test("without DEBUG, SECRET_KEY and ALLOWED_HOSTS are required")
    func productionRequirements() {
        #expect(throws: SettingsError.self) { try Settings(environment: ["ALLOWED_HOSTS": "a.example.com"]) }
        #expect((try? Settings(environment: ["SECRET_KEY": TestSettings.secretKey])) == nil)
        do {
            _ = try Settings(environment: ["ALLOWED_HOSTS": "a.example.com"])
        } catch {
            #expect(error.key == "SECRET_KEY")
        }
    }

    @Test("in DEBUG without SECRET_KEY a key is generated once and kept beside the SQLite file")
    func developmentKey() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("settings-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let environment = ["DEBUG": "true", "DATABASE_URL": "sqlite://\(directory.path)/db.sqlite3"]

        let first = try Settings(environment: environment)
        let second = try Settings(environment: environment)

        let keyPath = directory.path + "/db.sqlite3.secret-key"
        #expect(first.secretKeySource == .developmentFile(path: keyPath, created: true))
        #expect(second.secretKeySource == .developmentFile(path: keyPath, created: false))
        #expect(first.secretKey == second.secretKey)
        #expect(first.secretKey.count == 64)
        let permissions = try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int
        #expect(permissions == 0o600)
        #expect(first.allowedHosts.contains("localhost"))
    }

    @Test(".env files are read; the process environment wins, then .env, then .env.<environment>")
    func dotEnvPrecedence() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dotenv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
        # development defaults
        DEBUG=true
        PORT=8100
        LOG_LEVEL=debug
        """.write(to: directory.appendingPathComponent(".env.development"), atomically: true, encoding: .utf8)
        try """
        export SECRET_KEY="\(TestSettings.secretKey)"
        PORT=8200   # mine
        ALLOWED_HOSTS='chat.example.com'
        """.write(to: directory.appendingPathComponent(".env"), atomically: true, encoding: .utf8)

        let settings = try Settings.load(environmentName: "development", directory: directory.path,
                                         processEnvironment: ["LOG_LEVEL": "error"])

        #expect(settings.debug)
        #expect(settings.port == 8200)
        #expect(settings.logLevel == .error)
        #expect(settings.secretKey == TestSettings.secretKey)
        #expect(settings.allowedHosts == ["chat.example.com"])
        let production = try Settings.load(environmentName: "production", directory: directory.path, processEnvironment: [:])
        #expect(!production.debug, ".env.development is not read in production")
    }
}
