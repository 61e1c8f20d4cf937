import Vapor

/// `/api/files/…`: upload, describe, read and delete the caller's files.
struct FilesController: RouteCollection {
    let files: FileLibrary

    func boot(routes: any RoutesBuilder) throws {
        let group = routes.grouped("files")
        // Streamed: the body goes to a temporary file as it arrives, bounded by FILE_MAX_SIZE (not MAX_BODY_SIZE).
        group.on(.POST, body: .stream, use: upload)
        group.get(":fileID", use: show)
        group.get(":fileID", "content", use: content)
        group.delete(":fileID", use: delete)
    }

    /// Uploads have `FILE_UPLOAD_TIMEOUT` to arrive, not `REQUEST_TIMEOUT`: 20 MB over a slow link takes a while.
    static func uploadTimeout(_ settings: FileSettings) -> @Sendable (Request) -> Duration? {
        { request in
            guard request.method == .POST else { return nil }
            let path = request.path
            return path == "/api/files/" || path == "/api/files" ? max(settings.uploadTimeout, .seconds(1)) : nil
        }
    }

    func upload(req: Request) async throws -> Response {
        let file = try await files.upload(req, for: try req.currentUser.requireID(), on: req.db)
        return file.response(status: .created, for: req)
    }

    func show(req: Request) async throws -> FileResponse {
        FileResponse(try await files.find(try req.fileID(), ownedBy: try req.currentUser.requireID(), on: req.db))
    }

    /// The bytes, streamed a chunk at a time (``FileContent``).
    func content(req: Request) async throws -> Response {
        let record = try await files.find(try req.fileID(), ownedBy: try req.currentUser.requireID(), on: req.db)
        return try await FileContent.response(record, files: files, for: req)
    }

    func delete(req: Request) async throws -> HTTPStatus {
        try await files.delete(try req.fileID(), ownedBy: try req.currentUser.requireID(), on: req.db)
        return .noContent
    }
}

extension Request {
    /// The `:fileID` path parameter; 400 when it is not a UUID.
    func fileID() throws -> UUID {
        guard let raw = parameters.get("fileID"), let id = UUID(hyphenated: raw) else {
            throw RequestError.invalidParameter(name: "file_id", message: "Must be a UUID.")
        }
        return id
    }
}

/// A file's bytes as a response: streamed a chunk at a time, as the type decided at upload; images
/// inline, everything else as a download; never interpreted by the browser as anything else.
enum FileContent {
    static func response(_ record: FileRecord, files: FileLibrary, for req: Request) async throws -> Response {
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .contentType, value: record.mediaType.hasPrefix("text/") || record.mediaType == "application/json"
                             ? record.mediaType + "; charset=utf-8" : record.mediaType)
        headers.replaceOrAdd(name: .contentDisposition, value: ContentDisposition.header(inline: record.isImage, name: record.name))
        headers.replaceOrAdd(name: "X-Content-Type-Options", value: "nosniff")
        headers.replaceOrAdd(name: "Content-Security-Policy", value: "default-src 'none'; sandbox")
        // Private to the signed-in user; revalidated each time (a 304 when unchanged: files never change).
        headers.replaceOrAdd(name: .cacheControl, value: "private, no-cache")
        let etag = "\"\(record.sha256)\""
        headers.replaceOrAdd(name: .eTag, value: etag)
        if req.headers.first(name: .ifNoneMatch) == etag {
            return Response(status: .notModified, headers: headers)
        }
        // Checked before a 200 goes out: a missing file is an error status, not a body cut short.
        guard try await files.hasBytes(record, on: req.db) else { throw FileError.contentMissing }
        let db = req.db, logger = req.logger
        let body = Response.Body(asyncStream: { writer in
            do {
                try await files.read(record, on: db) { try await writer.write(.buffer($0)) }
                try await writer.write(.end)
            } catch {
                logger.error("a file could not be read", metadata: ["file": "\(record.id)", "error": "\(error)"])
                try? await writer.write(.error(error))
            }
        }, count: record.size)
        return Response(status: .ok, headers: headers, body: body)
    }
}
