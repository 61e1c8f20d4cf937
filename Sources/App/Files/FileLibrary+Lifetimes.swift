import Fluent
import Foundation
import SQLKit
import Vapor

/// How long files live: a file goes with the last chat that used it, with its owner, or after a
/// day attached to nothing. Every deletion takes the owner's files lock, which attaching takes
/// too, so that a file is never deleted while a message is being stored with it (and a link to a
/// deleted file fails loudly: `message_files.file_id` does not cascade).
extension FileLibrary {
    /// `userID`'s files (read before the user goes, for ``removeBytes(of:)``).
    func stored(ownedBy userID: UUID, on db: any Database) async throws -> [(id: UUID, storage: String)] {
        try await db.sql().select().columns("id", "storage").from("files").where("user_id", .equal, SQLBind(userID)).all()
            .map { (try $0.decode(column: "id", as: UUID.self), try $0.decode(column: "storage", as: String.self)) }
    }

    /// The files messages of `chatIDs` use (read before the chats are deleted, for ``removeUnused(_:on:)``).
    func files(usedIn chatIDs: [UUID], on db: any Database) async throws -> [UUID] {
        guard !chatIDs.isEmpty else { return [] }
        return try await db.sql().select().distinct().column("file_id").from("message_files")
            .where("chat_id", .in, chatIDs).all().map { try $0.decode(column: "file_id", as: UUID.self) }
    }

    /// Deletes those of `ids` that no message uses any more.
    func removeUnused(_ ids: [UUID], on db: any Database) async throws {
        guard !ids.isEmpty else { return }
        try await deleteUnattached(try await owners(of: db.sql().select().columns("id", "user_id").from("files").where("id", .in, ids)), on: db)
    }

    /// Deletes files attached to nothing since before `cutoff`; answers how many went.
    func sweep(before cutoff: Date, on db: any Database) async throws -> Int {
        let candidates = try await owners(of: db.sql().select().columns("id", "user_id").from("files")
            .where("created_at", .lessThan, SQLBind(cutoff)).where(SQLRaw(Self.unattached)))
        return try await deleteUnattached(candidates, on: db)
    }

    private static let unattached = "NOT EXISTS (SELECT 1 FROM message_files WHERE message_files.file_id = files.id)"

    /// The files `query` selects (`id`, `user_id`), by owner.
    private func owners(of query: SQLSelectBuilder) async throws -> [UUID: [UUID]] {
        var owners: [UUID: [UUID]] = [:]
        for row in try await query.all() {
            owners[try row.decode(column: "user_id", as: UUID.self), default: []].append(try row.decode(column: "id", as: UUID.self))
        }
        return owners
    }

    /// Deletes the files of each owner that are still attached to nothing, under the owner's lock.
    @discardableResult
    private func deleteUnattached(_ owners: [UUID: [UUID]], on db: any Database) async throws -> Int {
        var removed: [(id: UUID, storage: String)] = []
        for (owner, ids) in owners {
            removed += try await db.transaction { tx in
                try await tx.lockForWriting(FileLibrary.lockKey(owner), on: kind)
                return try await tx.sql().delete(from: "files").where("id", .in, ids).where(SQLRaw(Self.unattached))
                    .returning("id", "storage").all()
                    .map { (try $0.decode(column: "id", as: UUID.self), try $0.decode(column: "storage", as: String.self)) }
            }
        }
        await removeBytes(of: removed)
        return removed.count
    }
}

/// The server's own sweep of files attached to nothing for ``FileSettings/unattachedLifetime``.
struct FileSweep: Sendable {
    let files: FileLibrary
    let database: DatabaseAccess
    let logger: Logger

    /// How often it runs: a tenth of the lifetime, at most hourly.
    var interval: Duration { min(files.settings.unattachedLifetime / 10, .seconds(3600)) }

    func run(now: Date) async {
        do {
            let removed = try await files.sweep(before: now.adding(.zero - files.settings.unattachedLifetime), on: try database())
            if removed > 0 { logger.info("deleted files attached to nothing", metadata: ["files": "\(removed)"]) }
        } catch {
            logger.warning("the sweep of unattached files failed", metadata: ["error": "\(error)"])
        }
    }
}
