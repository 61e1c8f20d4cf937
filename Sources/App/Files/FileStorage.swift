import Foundation
import NIOCore
import NIOPosix
import SQLKit

/// Where files' bytes live. A file's row names its storage, so that files written before a change
/// of `FILE_STORAGE` are still read from where they are.
protocol FileStorage: Sendable {
    /// The name stored in `files.storage`.
    var name: String { get }
    /// Keeps the bytes of the temporary file at `path` as `fileID`'s, in `db` (the transaction that
    /// stores the file's row, when the bytes go to the database).
    func store(_ fileID: UUID, from path: String, size: Int, on db: any SQLDatabase) async throws
    /// Hands the bytes to `write` in order, a chunk at a time (never the whole file at once).
    func read(_ fileID: UUID, size: Int, on db: any SQLDatabase, _ write: (ByteBuffer) async throws -> Void) async throws
    /// Forgets the bytes of files whose rows are gone (the database's go with their rows).
    func removeBytes(of fileIDs: [UUID]) async
    /// Whether `fileID`'s bytes are there.
    func hasBytes(_ fileID: UUID, on db: any SQLDatabase) async throws -> Bool
}

extension FileStorage {
    /// The whole file (a model request needs it whole, base64 in its body).
    func data(_ fileID: UUID, size: Int, on db: any SQLDatabase) async throws -> Data {
        var data = Data(capacity: size)
        try await read(fileID, size: size, on: db) { data.append(contentsOf: $0.readableBytesView) }
        return data
    }
}

/// Bytes in `file_chunks`, 256 KiB a row: every instance reads them with nothing else to run, and
/// a file streams out a chunk at a time.
struct DatabaseFileStorage: FileStorage {
    let io: NonBlockingFileIO
    static let chunkSize = 256 << 10

    var name: String { "database" }

    func store(_ fileID: UUID, from path: String, size: Int, on db: any SQLDatabase) async throws {
        try await io.withFileHandle(path: path, mode: .read) { handle in
            var position = 0
            var offset = 0
            while offset < size {
                let chunk = try await io.read(fileHandle: handle, fromOffset: Int64(offset), byteCount: min(Self.chunkSize, size - offset),
                                              allocator: ByteBufferAllocator())
                guard chunk.readableBytes > 0 else { throw FileStorageError.shortFile }
                try await db.insert(into: "file_chunks").columns("file_id", "position", "data")
                    .values(SQLBind(fileID), SQLBind(position), SQLBind(Data(chunk.readableBytesView))).run()
                offset += chunk.readableBytes
                position += 1
            }
        }
    }

    func read(_ fileID: UUID, size: Int, on db: any SQLDatabase, _ write: (ByteBuffer) async throws -> Void) async throws {
        let chunks = (size + Self.chunkSize - 1) / Self.chunkSize
        for position in 0..<chunks {
            guard let row = try await db.select().column("data").from("file_chunks")
                .where("file_id", .equal, SQLBind(fileID)).where("position", .equal, SQLBind(position)).first() else {
                throw FileStorageError.missingBytes
            }
            try await write(ByteBuffer(data: try row.decode(column: "data", as: Data.self)))
        }
    }

    func removeBytes(of fileIDs: [UUID]) async {}

    func hasBytes(_ fileID: UUID, on db: any SQLDatabase) async throws -> Bool {
        try await db.select().column("position").from("file_chunks").where("file_id", .equal, SQLBind(fileID))
            .where("position", .equal, SQLBind(0)).first() != nil
    }
}

/// Bytes as files in a directory (`FILE_STORAGE=directory:<path>`), one per file, named by its id.
struct DirectoryFileStorage: FileStorage {
    let directory: String
    let io: NonBlockingFileIO
    static let chunkSize = 256 << 10

    var name: String { "directory" }

    func path(of fileID: UUID) -> String { directory + "/" + fileID.lowercased }

    func store(_ fileID: UUID, from path: String, size: Int, on db: any SQLDatabase) async throws {
        let target = self.path(of: fileID)
        // A rename when the directory is on the same file system; else a copy.
        do {
            try await io.rename(path: path, newName: target)
        } catch {
            try FileManager.default.copyItem(atPath: path, toPath: target)
        }
    }

    func read(_ fileID: UUID, size: Int, on db: any SQLDatabase, _ write: (ByteBuffer) async throws -> Void) async throws {
        try await io.withFileHandle(path: path(of: fileID), mode: .read) { handle in
            var offset = 0
            while offset < size {
                let chunk = try await io.read(fileHandle: handle, fromOffset: Int64(offset), byteCount: min(Self.chunkSize, size - offset),
                                              allocator: ByteBufferAllocator())
                guard chunk.readableBytes > 0 else { throw FileStorageError.missingBytes }
                offset += chunk.readableBytes
                try await write(chunk)
            }
        }
    }

    func removeBytes(of fileIDs: [UUID]) async {
        for id in fileIDs { try? await io.remove(path: path(of: id)) }
    }

    func hasBytes(_ fileID: UUID, on db: any SQLDatabase) async throws -> Bool {
        FileManager.default.isReadableFile(atPath: path(of: fileID))
    }
}

enum FileStorageError: Error {
    /// The temporary file was shorter than measured.
    case shortFile
    /// A stored file's bytes are not all there.
    case missingBytes
    /// The file was kept in a storage this server is not configured with.
    case unknownStorage(String)
}
