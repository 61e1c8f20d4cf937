import Foundation

/// The signing key used in development when `SECRET_KEY` is not set: generated once and kept
/// beside the SQLite file (`db.sqlite3.secret-key`), so tokens survive a restart.
enum DevelopmentSecretKey {
    static func loadOrCreate(for location: DatabaseSettings.Location) throws(SettingsError) -> (String, Settings.SecretKeySource) {
        let path: String
        switch location {
        case .sqliteMemory:
            return (generate(), .ephemeral)
        case .sqliteFile(let databasePath):
            path = databasePath + ".secret-key"
        case .postgres:
            path = ".secret-key"
        }
        if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
           existing.utf8.count >= 32 {
            return (existing, .developmentFile(path: path, created: false))
        }
        let key = generate()
        let created = FileManager.default.createFile(
            atPath: path, contents: Data((key + "\n").utf8), attributes: [.posixPermissions: 0o600]
        )
        guard created else {
            throw SettingsError(key: "SECRET_KEY", problem: "not set, and a development key could not be written to \(path)")
        }
        return (key, .developmentFile(path: path, created: true))
    }

    /// 32 random bytes as 64 hex digits.
    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
