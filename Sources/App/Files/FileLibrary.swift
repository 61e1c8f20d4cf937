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
    /// poppler's tools (a test may take them away).
    var pdf: PDFTools
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
        // Files are read and written, and PDFs read, on threads of their own, stopped with the
        // application: the shared blocking pool (a thread per core) runs SQLite and bcrypt, and a
        // transaction that stores a file's chunks must not wait behind them for its reads.
        let fileThreads = NIOThreadPool(numberOfThreads: 2)
        let pdfThreads = NIOThreadPool(numberOfThreads: 2)
        for pool in [fileThreads, pdfThreads] {
            pool.start()
            app.lifecycle.use(ThreadPoolShutdown(pool: pool))
        }
        let library = FileLibrary(settings: settings, io: NonBlockingFileIO(threadPool: fileThreads), threadPool: pdfThreads,
                                  clock: clock, kind: kind)
        library.upload.removeLeftovers(olderThan: settings.uploadTimeout, logger: app.logger)
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
        // A request that timed out (its client told so) stores nothing.
        try Task.checkCancellation()
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

    /// Every file of `userID`, oldest first.
    func records(ownedBy userID: UUID, on db: any Database) async throws -> [FileRecord] {
        try await db.sql().select().columns(FileRecord.columns.map { SQLColumn($0) }).from("files")
            .where("user_id", .equal, SQLBind(userID)).orderBy("created_at").orderBy("id")
            .all().map(FileRecord.init(row:))
    }

    /// Whether the file's bytes are where its row says (checked before a 200 is promised).
    func hasBytes(_ record: FileRecord, on db: any Database) async throws -> Bool {
        guard let storage = storages[record.storage] else { return false }
        return try await storage.hasBytes(record.id, on: try db.sql())
    }

    /// Forgets the bytes of deleted files, in the storage each was kept in.
    func removeBytes(of files: [(id: UUID, storage: String)]) async {
        for (name, group) in Dictionary(grouping: files, by: \.storage) {
            await storages[name]?.removeBytes(of: group.map(\.id))
        }
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
        let record = try await db.transaction { tx in
            // The lock a send takes too: a file cannot be deleted while a message is attaching it.
            try await tx.lockForWriting(FileLibrary.lockKey(userID), on: kind)
            let record = try await find(id, ownedBy: userID, on: tx)
            let used = try await tx.sql().select().column(SQLLiteral.numeric("1"), as: "used").from("message_files")
                .where("file_id", .equal, SQLBind(id)).limit(1).first()
            guard used == nil else { throw FileError.inUse }
            try await tx.sql().delete(from: "files").where("id", .equal, SQLBind(id)).run()
            return record
        }
        await removeBytes(of: [(record.id, record.storage)])
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

/// Stops a thread pool when the application stops.
private struct ThreadPoolShutdown: LifecycleHandler {
    let pool: NIOThreadPool

    func shutdownAsync(_ application: Application) async {
        try? await pool.shutdownGracefully()
    }
}
