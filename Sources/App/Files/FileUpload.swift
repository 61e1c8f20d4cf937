import Crypto
import Foundation
import MultipartKit
import NIOCore
import NIOPosix
import Vapor

/// An upload received: the `file` part of a `multipart/form-data` body, written to a temporary
/// file as it arrives (never held whole), measured, hashed and inspected on the way. Nothing of it
/// is stored until it is accepted; ``discard()`` removes the temporary file.
struct ReceivedUpload: Sendable {
    /// The temporary file holding the bytes.
    let path: String
    let name: String
    let size: Int
    let sha256: String
    let kind: FileKind
    let io: NonBlockingFileIO

    func discard() async {
        try? await io.remove(path: path)
    }
}

/// Reads an upload's multipart body (``ReceivedUpload``).
struct FileUpload {
    let io: NonBlockingFileIO
    let maxSize: Int
    let temporaryDirectory: String

    /// Room a body may have beyond the file: part headers, boundaries and small other fields.
    static let overhead = 64 << 10
    static let prefix = "chat-upload-"

    /// Removes temporary files that uploads left behind (a process killed mid-upload): those older
    /// than an upload may take.
    func removeLeftovers(olderThan age: Duration, logger: Logger) {
        let files = FileManager.default
        guard let names = try? files.contentsOfDirectory(atPath: temporaryDirectory) else { return }
        // Files' modification times are the system's, so the system's clock (not the injected one) judges them.
        let cutoff = Date().addingTimeInterval(-age.seconds)
        var removed = 0
        for name in names where name.hasPrefix(Self.prefix) {
            let path = temporaryDirectory + "/" + name
            guard let modified = (try? files.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified < cutoff else { continue }
            if (try? files.removeItem(atPath: path)) != nil { removed += 1 }
        }
        if removed > 0 { logger.notice("removed uploads left behind", metadata: ["files": "\(removed)"]) }
    }

    /// Receives the `file` part of `request`'s body: 415 when it is not multipart, 413 as soon as
    /// the file passes `maxSize`, 400 for a malformed body, a missing or repeated `file` part, or a
    /// bad name; the file's type is then decided from its bytes (``FileInspector``).
    func receive(_ request: Request) async throws -> ReceivedUpload {
        guard let type = request.headers.contentType, type.type == "multipart", type.subType == "form-data",
              let boundary = type.parameters["boundary"], !boundary.isEmpty, boundary.utf8.count <= 200 else {
            throw FileError.notMultipart
        }
        if let declared = request.headers.first(name: .contentLength).flatMap(Int.init), declared > maxSize + Self.overhead {
            throw FileError.tooLarge(limit: maxSize)
        }
        let path = temporaryDirectory + "/" + Self.prefix + UUID().lowercased
        do {
            return try await io.withFileHandle(path: path, mode: .write, flags: .allowFileCreation(posixMode: 0o600)) { handle in
                try await receive(request.body, boundary: boundary, into: handle, path: path)
            }
        } catch {
            try? await io.remove(path: path)
            throw error
        }
    }

    private func receive(_ body: Request.Body, boundary: String, into handle: NIOFileHandle, path: String) async throws -> ReceivedUpload {
        let parts = PartCollector()
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in parts.header(name, value) }
        parser.onBody = { buffer in parts.body(&buffer) }
        parser.onPartComplete = { parts.complete() }
        var inspector = FileInspector()
        var hasher = SHA256()
        var received = 0
        for try await chunk in body {
            received += chunk.readableBytes
            guard received <= maxSize + Self.overhead else { throw FileError.tooLarge(limit: maxSize) }
            try Task.checkCancellation()
            do { try parser.execute(chunk) } catch { throw FileError.badUpload("The multipart body is malformed.") }
            if let problem = parts.problem { throw problem }
            guard var pending = parts.takeFileBytes() else { continue }
            guard inspector.size + pending.readableBytes <= maxSize else { throw FileError.tooLarge(limit: maxSize) }
            pending.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            inspector.feed(pending)
            try await io.write(fileHandle: handle, buffer: pending)
            pending.clear()
        }
        if let problem = parts.problem { throw problem }
        guard parts.fileComplete, let name = parts.fileName else {
            throw FileError.badUpload(parts.fileName == nil ? "Send the file in a part named 'file', with a filename." : "The upload ended early.")
        }
        let kind: FileKind
        do { kind = try inspector.finish(name: name) } catch { throw FileError.refused(error) }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return ReceivedUpload(path: path, name: name, size: inspector.size, sha256: digest, kind: kind, io: io)
    }
}

/// The parts of a multipart body as the parser reports them: the `file` part's bytes are handed
/// on as they come; other parts are ignored. Each callback does constant work (the parser may call
/// `body` once per CR): a part's kind is decided once, at its first bytes; only its
/// `Content-Disposition` is kept, a part may have few headers, and what is not the file is bounded
/// by ``FileUpload/overhead`` in all.
private final class PartCollector {
    /// What the current part is, once decided.
    private enum Kind {
        case file
        case other
        /// A second `file` part.
        case extraFile
    }

    private var disposition: String?
    /// The current part's `filename*`, decoded.
    private var extendedName: String?
    private var headerCount = 0
    private var kind: Kind?
    /// Bytes of headers and of parts that are not the file, so far.
    private var otherBytes = 0
    private var pending: ByteBuffer?
    private(set) var fileName: String?
    private(set) var fileComplete = false
    private(set) var problem: FileError?

    static let maxHeadersPerPart = 16

    func header(_ name: String, _ value: String) {
        guard problem == nil else { return }
        headerCount += 1
        otherBytes += name.utf8.count + value.utf8.count
        guard headerCount <= Self.maxHeadersPerPart, otherBytes <= FileUpload.overhead else {
            problem = .badUpload("The multipart body has too many or too large part headers.")
            return
        }
        guard name.lowercased() == "content-disposition" else { return }
        disposition = value
        // A quoted name cut short (a CR LF inside it ends the header line) is malformed, not a shorter name.
        var quotes = 0, escaped = false
        for character in value.unicodeScalars {
            if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { quotes += 1 }
        }
        if quotes % 2 == 1 { problem = .badName("The file name is malformed.") }
        // RFC 5987's `filename*=UTF-8''…`, percent-encoded, wins over `filename` (its bytes checked like any name's).
        if let range = value.range(of: "filename*=UTF-8''", options: .caseInsensitive) {
            let encoded = value[range.upperBound...].prefix { $0 != ";" && !$0.isWhitespace }
            if let decoded = String(encoded).removingPercentEncoding {
                extendedName = decoded
            } else {
                problem = .badName("The file name is malformed.")
            }
        }
    }

    func body(_ buffer: inout ByteBuffer) {
        let kind = self.kind ?? decide()
        switch kind {
        case .file:
            if pending == nil { pending = buffer } else { pending?.writeBuffer(&buffer) }
        case .other, .extraFile:
            otherBytes += buffer.readableBytes
            if otherBytes > FileUpload.overhead, problem == nil { problem = .badUpload("Send only the file.") }
        }
    }

    func complete() {
        switch kind ?? decide() {
        case .file: fileComplete = true
        case .extraFile: if problem == nil { problem = .badUpload("Send one file per upload.") }
        case .other: break
        }
        (disposition, extendedName, headerCount, kind) = (nil, nil, 0, nil)
    }

    /// Decides what the current part is, from its headers (once, at its first bytes or its end).
    private func decide() -> Kind {
        var headers = HTTPHeaders()
        if let disposition { headers.add(name: .contentDisposition, value: disposition) }
        let parsed = headers.contentDisposition
        let decided: Kind
        if parsed?.name != "file" {
            decided = .other
        } else if fileName != nil || problem != nil {
            decided = .extraFile
        } else {
            do {
                fileName = try FileName.sanitized(extendedName ?? parsed?.filename ?? "")
                decided = .file
            } catch {
                problem = error
                decided = .other
            }
        }
        kind = decided
        return decided
    }

    func takeFileBytes() -> ByteBuffer? {
        defer { pending = nil }
        return pending
    }
}

/// The name a file is kept under: its last path part (a client may send a path), no control
/// characters, at most 255 bytes of UTF-8.
enum FileName {
    static let maxBytes = 255

    static func sanitized(_ raw: String) throws(FileError) -> String {
        let last = raw.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let name = last.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name != ".", name != ".." else { throw .badName("The file needs a name.") }
        guard !raw.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .badName("A file name may not hold control characters.")
        }
        guard name.utf8.count <= maxBytes else { throw .badName("A file name may be at most \(maxBytes) bytes of UTF-8.") }
        return name
    }
}
