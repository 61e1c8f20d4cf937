import Fluent
import Foundation
import NIOCore

/// Everything an account holds, as a ZIP written while it is read (``ZipStream``): nothing of it is
/// gathered in memory but one chat or one piece of a file at a time.
///
/// - `account.json`: the account, its sign-in identities, API keys (never a secret) and share links;
/// - `chats/<id>.json`: each chat with every message of every version (`current` marks the
///   conversation), and `chats/<id>.md`, the current conversation to read;
/// - `files/<id>/<name>`: each file's bytes;
/// - `usage.json`: the tokens used, by day and model.
struct AccountExport: Sendable {
    let files: FileLibrary
    let usage: UsageLedger
    let keys: APIKeys
    let shares: ShareService
    let clock: any WallClock

    /// The archive's file name.
    static func fileName(at date: Date) -> String {
        "chatserver-export-" + String(RFC3339.string(date).prefix(10)) + ".zip"
    }

    /// The files the archive of `user` will carry — refused (``AccountsError/exportTooLarge``)
    /// before anything is sent when the archive would pass what a ZIP without ZIP64 holds: its
    /// entries, and its files' bytes with room for the chats.
    func files(of user: User, on db: any Database) async throws -> [FileRecord] {
        let id = try user.requireID()
        let chats = try await Chat.query(on: db).filter(\.$owner.$id == id).count()
        let stored = try await files.records(ownedBy: id, on: db)
        let bytes = stored.reduce(UInt64(0)) { $0 + UInt64($1.size) }
        guard 2 + 2 * chats + stored.count <= ZipStream.maxEntries, bytes <= ZipStream.maxSize / 10 * 9 else {
            throw AccountsError.exportTooLarge
        }
        return stored
    }

    /// Writes the archive of `user`, with `stored` (``files(of:on:)``), to `output`, piece by
    /// piece; `checking` is asked before each entry (it throws to stop: the session was signed out
    /// meanwhile).
    func write(_ user: User, files stored: [FileRecord], on db: any Database, checking: @Sendable () async throws -> Void = {},
               to output: @escaping (ByteBuffer) async throws -> Void) async throws {
        let id = try user.requireID()
        let now = clock.now()
        let encoder = JSONCoding.makeEncoder()
        encoder.outputFormatting.insert(.prettyPrinted)
        var zip = ZipStream(modified: now, output: output)

        let account = AccountArchive(
            exportedAt: now, user: try UserResponse(user),
            identities: try await Identity.query(on: db).filter(\.$user.$id == id).sort(\.$createdAt).all().map(AccountArchive.Link.init),
            apiKeys: try await keys.list(of: id, on: db).map { try APIKeyResponse($0) },
            shares: try await shares.list(for: id, on: db)
        )
        try await zip.add("account.json", data: ByteBuffer(data: try encoder.encode(account)))

        let chats = try await Chat.query(on: db).filter(\.$owner.$id == id).sort(\.$createdAt).sort(\.$id).all()
        for chat in chats {
            try await checking()
            let chatID = try chat.requireID()
            let messages = try await ChatReads.allMessages(of: chatID, on: db)
            try await zip.add("chats/\(chatID.lowercased).json", data: ByteBuffer(data: try encoder.encode(ChatResponse(chat, messages: messages))))
            let current = ChatResponse(summary: try ChatSummaryResponse(chat), messages: messages.filter(\.current))
            try await zip.add("chats/\(chatID.lowercased).md", data: ByteBuffer(string: ChatExport.markdown(current)))
        }

        for file in stored {
            // A file whose bytes went missing is left out rather than failing the whole archive.
            try await checking()
            guard try await files.hasBytes(file, on: db) else { continue }
            try await zip.add("files/\(file.id.lowercased)/" + Self.safeName(file.name)) { write in
                try await files.read(file, on: db, write)
            }
        }

        try await checking()
        let days = try await usage.entries(from: "0000-00-00", to: "9999-99-99", of: id, on: db).map(UsageArchive.Day.init)
        try await zip.add("usage.json", data: ByteBuffer(data: try encoder.encode(UsageArchive(days: days))))
        try await zip.finish()
    }

    /// A file's name as one path segment in the archive that every system can write: no
    /// separators, nothing Windows refuses (`<>:"|?*`, a trailing dot or space, `CON` and the other
    /// device names), no control or invisible format characters (a right-to-left override can
    /// disguise an extension), no leading dots; at most 100 characters.
    static func safeName(_ name: String) -> String {
        let refused = Set("/\\<>:\"|?*".unicodeScalars)
        let scalars = name.unicodeScalars.map { scalar -> Character in
            let category = scalar.properties.generalCategory
            return refused.contains(scalar) || category == .control || category == .format ? "_" : Character(scalar)
        }
        var cleaned = String(String(scalars).drop { $0 == "." || $0 == " " }.prefix(100))
        while cleaned.hasSuffix(".") || cleaned.hasSuffix(" ") { cleaned.removeLast() }
        let stem = cleaned.split(separator: ".", maxSplits: 1).first.map { $0.uppercased() } ?? ""
        let devices = Set(["CON", "PRN", "AUX", "NUL"] + (1...9).flatMap { ["COM\($0)", "LPT\($0)"] })
        if devices.contains(stem) { cleaned = "_" + cleaned }
        return cleaned.isEmpty ? "file" : cleaned
    }
}

/// `account.json`.
private struct AccountArchive: Encodable {
    struct Link: Encodable {
        var provider: String
        var subject: String
        var email: String
        var linkedAt: Date?

        enum CodingKeys: String, CodingKey { case provider, subject, email, linkedAt = "linked_at" }

        init(_ identity: Identity) {
            (provider, subject, email, linkedAt) = (identity.provider, identity.subject, identity.email, identity.createdAt)
        }
    }

    var exportedAt: Date
    var user: UserResponse
    var identities: [Link]
    var apiKeys: [APIKeyResponse]
    var shares: [ShareResponse]

    enum CodingKeys: String, CodingKey {
        case exportedAt = "exported_at", user, identities, apiKeys = "api_keys", shares
    }
}

/// `usage.json`.
private struct UsageArchive: Encodable {
    struct Day: Encodable {
        var day: String
        var model: String
        var inputTokens: Int
        var outputTokens: Int
        var cacheReadInputTokens: Int
        var cacheCreationInputTokens: Int
        var replies: Int

        enum CodingKeys: String, CodingKey {
            case day, model, replies, inputTokens = "input_tokens", outputTokens = "output_tokens"
            case cacheReadInputTokens = "cache_read_input_tokens", cacheCreationInputTokens = "cache_creation_input_tokens"
        }

        init(_ entry: UsageLedger.Entry) {
            (day, model, replies) = (entry.day, entry.model, entry.replies)
            (inputTokens, outputTokens) = (entry.tokens.input, entry.tokens.output)
            (cacheReadInputTokens, cacheCreationInputTokens) = (entry.tokens.cacheRead, entry.tokens.cacheWrite)
        }
    }

    var days: [Day]
}
