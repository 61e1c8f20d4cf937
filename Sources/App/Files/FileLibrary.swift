import Fluent
import Foundation
import NIOCore
import SQLKit
import Vapor

/// Users' files: uploads accepted or refused before anything is stored, each seen only by its
/// owner, kept while a message uses them, and deleted with the last chat that used them or, when
/// attached to nothing, after ``FileSettings/unattachedLifetime``.
struct FileLibrary: Sendable {
    let settings: FileSettings
    /// Where new files go; ``storages`` reads every kind.
    let storage: any FileStorage
    let storages: [String: any FileStorage]
    let upload: FileUpload
    let pdf: PDFTools
    let clock: any WallClock
    let kind: DatabaseKind

    init(settings: FileSettings, io: NonBlockingFileIO, threadPool: NIOThreadPool, clock: any WallClock, kind: DatabaseKind) {
        self.settings = settings
        let database = DatabaseFileStorage(io: io)
        var storages: [String: any FileStorage] = [database.name: database]
        if case .directory(let path) = settings.storage {
            let directory = DirectoryFileStorage(directory: path, io: io)
            storages[directory.name] = directory
            storage = directory
        } else {
            storage = database
        }
        self.storages = storages
        upload = FileUpload(io: io, maxSize: settings.maxSize, temporaryDirectory: NSTemporaryDirectory().trimmingSuffix("/"))
        pdf = PDFTools.locate(timeout: settings.processTimeout, threadPool: threadPool)
        self.clock = clock
        self.kind = kind
    }

    /// The library `settings` describe; its directory is made when missing, and a server without
    /// poppler-utils says at start-up that it refuses PDFs.
    static func make(_ settings: FileSettings, app: Application, clock: any WallClock, kind: DatabaseKind) throws -> FileLibrary {
        if case .directory(let path) = settings.storage {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let library = FileLibrary(settings: settings, io: NonBlockingFileIO(threadPool: app.threadPool), threadPool: app.threadPool,
                                  clock: clock, kind: kind)
        if !library.pdf.available {
            app.logger.warning("PDF attachments are refused: poppler-utils (pdfinfo, pdftotext) is not installed")
        }
        return library
    }

    /// The lock that uploads, deletions and attaching take for a user's files (within a transaction).
    static func lockKey(_ userID: UUID) -> String { "files:" + userID.lowercased }

    /// Receives, checks and stores the file of an upload request.
    func upload(_ request: Request, for userID: UUID, on db: any Database) async throws -> FileResponse {
        let received = try await upload.receive(request)
        do {
            let stored = try await store(received, for: userID, on: db)
            await received.discard()
            return stored
        } catch {
            await received.discard()
            throw error
        }
    }

    private func store(_ received: ReceivedUpload, for userID: UUID, on db: any Database) async throws -> FileResponse {
        var described = FileRecord(id: UUID(), userID: userID, name: received.name, mediaType: received.kind.mediaType, size: received.size,
                                sha256: received.sha256, storage: storage.name, createdAt: clock.now().atDatabasePrecision)
        var extractedText: String?
        switch received.kind {
        case .image(_, let width, let height):
            (described.width, described.height) = (width, height)
        case .pdf:
            let pages: Int
            do {
                pages = try await pdf.pageCount(of: received.path)
            } catch let failure as PDFTools.Failure {
                throw FileError.pdfUnreadable(failure.detail)
            }
            guard pages <= settings.pdfMaxPages else { throw FileError.tooManyPages(pages: pages, limit: settings.pdfMaxPages) }
            guard pages > 0 else { throw FileError.pdfUnreadable("it has no pages") }
            described.pages = pages
            do {
                extractedText = try await pdf.text(of: received.path, pages: pages, maxBytes: settings.maxExtractedText)
            } catch let failure as PDFTools.Failure {
                throw FileError.pdfUnreadable(failure.detail)
            }
        case .text:
            break
        }
        let (record, extracted) = (described, extractedText)
        do {
            try await db.transaction { tx in
                let sql = try tx.sql()
                // Under the owner's lock, so that concurrent uploads cannot pass the quota together.
                try await tx.lockForWriting(FileLibrary.lockKey(userID), on: kind)
                let used = try await sql.raw("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS used FROM files WHERE user_id = \(bind: userID)")
                    .first()?.decode(column: "used", as: Int.self) ?? 0
                guard used + record.size <= settings.storagePerUser else { throw FileError.storageQuotaExceeded(limit: settings.storagePerUser) }
                try await sql.insert(into: "files")
                    .columns("id", "user_id", "name", "media_type", "size", "sha256", "width", "height", "pages", "extracted_text", "storage",
                             "created_at")
                    .values(SQLBind(record.id), SQLBind(userID), SQLBind(record.name), SQLBind(record.mediaType), SQLBind(record.size),
                            SQLBind(record.sha256), SQLBind(record.width), SQLBind(record.height), SQLBind(record.pages),
                            SQLBind(extracted), SQLBind(record.storage), SQLBind(record.createdAt))
                    .run()
                try await storage.store(record.id, from: received.path, size: record.size, on: sql)
            }
        } catch {
            await storage.removeBytes(of: [record.id])
            throw error
        }
        return FileResponse(record)
    }

    /// The caller's file; someone else's is as absent as one that never existed.
    func find(_ id: UUID, ownedBy userID: UUID, on db: any Database) async throws -> FileRecord {
        guard let record = try await records([id], ownedBy: userID, on: db).first else { throw FileError.notFound }
        return record
    }

    /// Those of `ids` that are the caller's files.
    func records(_ ids: [UUID], ownedBy userID: UUID, on db: any Database) async throws -> [FileRecord] {
        guard !ids.isEmpty else { return [] }
        return try await try db.sql().select().columns(FileRecord.columns.map { SQLColumn($0) }).from("files")
            .where("id", .in, ids).where("user_id", .equal, SQLBind(userID))
            .all().map(FileRecord.init(row:))
    }

    /// Hands the file's bytes to `write`, a chunk at a time.
    func read(_ record: FileRecord, on db: any Database, _ write: (ByteBuffer) async throws -> Void) async throws {
        guard let storage = storages[record.storage] else { throw FileStorageError.unknownStorage(record.storage) }
        try await storage.read(record.id, size: record.size, on: try db.sql(), write)
    }

    /// The whole file.
    func data(_ record: FileRecord, on db: any Database) async throws -> Data {
        guard let storage = storages[record.storage] else { throw FileStorageError.unknownStorage(record.storage) }
        return try await storage.data(record.id, size: record.size, on: try db.sql())
    }

    /// A PDF's text as extracted when it was uploaded ("" for a PDF of images alone).
    func extractedText(of id: UUID, on db: any Database) async throws -> String {
        let row = try await db.sql().select().column("extracted_text").from("files").where("id", .equal, SQLBind(id)).first()
        return try row?.decode(column: "extracted_text", as: String?.self) ?? ""
    }

    /// Those of `ids` whose extracted text is not empty (PDFs that are more than scanned pages).
    func withText(_ ids: [UUID], on db: any Database) async throws -> Set<UUID> {
        guard !ids.isEmpty else { return [] }
        return Set(try await db.sql().select().column("id").from("files").where("id", .in, ids)
            .where(SQLRaw("LENGTH(extracted_text) > 0")).all().map { try $0.decode(column: "id", as: UUID.self) })
    }

    /// Deletes the caller's file; 409 while a message uses it.
    func delete(_ id: UUID, ownedBy userID: UUID, on db: any Database) async throws {
        try await db.transaction { tx in
            // The lock a send takes too: a file cannot be deleted while a message is attaching it.
            try await tx.lockForWriting(FileLibrary.lockKey(userID), on: kind)
            _ = try await find(id, ownedBy: userID, on: tx)
            let used = try await tx.sql().select().column(SQLLiteral.numeric("1"), as: "used").from("message_files")
                .where("file_id", .equal, SQLBind(id)).limit(1).first()
            guard used == nil else { throw FileError.inUse }
            try await tx.sql().delete(from: "files").where("id", .equal, SQLBind(id)).run()
        }
        await storage.removeBytes(of: [id])
    }

    /// The ids of `userID`'s files.
    func ids(ownedBy userID: UUID, on db: any Database) async throws -> [UUID] {
        try await db.sql().select().column("id").from("files").where("user_id", .equal, SQLBind(userID)).all()
            .map { try $0.decode(column: "id", as: UUID.self) }
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
        let removed = try await db.sql().delete(from: "files").where("id", .in, ids)
            .where(SQLRaw("NOT EXISTS (SELECT 1 FROM message_files WHERE message_files.file_id = files.id)"))
            .returning("id").all().map { try $0.decode(column: "id", as: UUID.self) }
        await storage.removeBytes(of: removed)
    }

    /// Deletes files attached to nothing since before `cutoff`; answers how many went.
    func sweep(before cutoff: Date, on db: any Database) async throws -> Int {
        let removed = try await db.sql().delete(from: "files").where("created_at", .lessThan, SQLBind(cutoff))
            .where(SQLRaw("NOT EXISTS (SELECT 1 FROM message_files WHERE message_files.file_id = files.id)"))
            .returning("id").all().map { try $0.decode(column: "id", as: UUID.self) }
        await storage.removeBytes(of: removed)
        return removed.count
    }
}

extension FileRecord {
    init(row: any SQLRow) throws {
        self.init(id: try row.decode(column: "id", as: UUID.self), userID: try row.decode(column: "user_id", as: UUID.self),
                  name: try row.decode(column: "name", as: String.self), mediaType: try row.decode(column: "media_type", as: String.self),
                  size: try row.decode(column: "size", as: Int.self), sha256: try row.decode(column: "sha256", as: String.self),
                  width: try row.decode(column: "width", as: Int?.self), height: try row.decode(column: "height", as: Int?.self),
                  pages: try row.decode(column: "pages", as: Int?.self), storage: try row.decode(column: "storage", as: String.self),
                  createdAt: try row.decode(column: "created_at", as: Date.self))
    }
}

private extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
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
