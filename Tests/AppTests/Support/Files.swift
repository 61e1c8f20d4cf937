@testable import App
import Crypto
import Foundation
import NIOCore
import Testing
import VaporTesting

/// Files for upload tests, made in code: real enough for the server's inspection (and, for PDFs,
/// for poppler's tools), each as small as it can be.
enum TestFiles {
    /// A real 1×1 PNG.
    static let png = Data(base64Encoded: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")!

    /// A PNG whose header says `width`×`height`, padded with an ancillary chunk of `padding` bytes.
    static func png(width: UInt32, height: UInt32, padding: Int = 0) -> Data {
        var data = png
        data.replaceSubrange(16..<24, with: withUnsafeBytes(of: width.bigEndian, Array.init) + withUnsafeBytes(of: height.bigEndian, Array.init))
        guard padding > 0 else { return data }
        var chunk = Data(withUnsafeBytes(of: UInt32(padding).bigEndian, Array.init))
        chunk.append(contentsOf: Array("tEXt".utf8))
        chunk.append(Data(repeating: 0x61, count: padding))
        chunk.append(contentsOf: [0, 0, 0, 0])
        data.insert(contentsOf: chunk, at: data.count - 12)
        return data
    }

    /// A PDF with one page per text (Helvetica, the text as is); `count` overrides the page count
    /// its page tree claims (a "PDF bomb").
    static func pdf(_ pages: [String], count: Int? = nil, title: String? = nil) -> Data {
        var objects = ["<< /Type /Catalog /Pages 2 0 R >>"]
        let kids = pages.indices.map { "\(3 + 2 * $0) 0 R" }.joined(separator: " ")
        objects.append("<< /Type /Pages /Kids [\(kids)] /Count \(count ?? pages.count) >>")
        let font = 3 + 2 * pages.count
        for (index, text) in pages.enumerated() {
            let stream = "BT /F1 12 Tf 72 720 Td (\(text)) Tj ET"
            objects.append("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents \(4 + 2 * index) 0 R /Resources << /Font << /F1 \(font) 0 R >> >> >>")
            objects.append("<< /Length \(stream.utf8.count) >>\nstream\n\(stream)\nendstream")
        }
        objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
        if let title { objects.append("<< /Title (\(title)) >>") }
        var out = "%PDF-1.4\n"
        var offsets: [Int] = []
        for (index, object) in objects.enumerated() {
            offsets.append(out.utf8.count)
            out += "\(index + 1) 0 obj\n\(object)\nendobj\n"
        }
        let xref = out.utf8.count
        out += "xref\n0 \(objects.count + 1)\n0000000000 65535 f \n"
        out += offsets.map { String(repeating: "0", count: 10 - String($0).count) + "\($0) 00000 n \n" }.joined()
        let info = title == nil ? "" : " /Info \(objects.count) 0 R"
        out += "trailer\n<< /Size \(objects.count + 1) /Root 1 0 R\(info) >>\nstartxref\n\(xref)\n%%EOF\n"
        return Data(out.utf8)
    }

    /// Bytes that are no accepted type (a NUL among them).
    static let binary = Data([0x4D, 0x5A, 0x90, 0x00, 0x03, 0x00, 0x00, 0x00, 0xFF, 0xFE])

    /// A `multipart/form-data` body with one part per entry: (field name, filename, declared type, bytes).
    static func multipart(_ parts: [(name: String, filename: String?, type: String?, data: Data)],
                          boundary: String = "chat-test-boundary") -> (body: ByteBuffer, contentType: String) {
        var body = ByteBuffer()
        for part in parts {
            body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(part.name)\"")
            if let filename = part.filename { body.writeString("; filename=\"\(filename)\"") }
            body.writeString("\r\n")
            if let type = part.type { body.writeString("Content-Type: \(type)\r\n") }
            body.writeString("\r\n")
            body.writeBytes(part.data)
            body.writeString("\r\n")
        }
        body.writeString("--\(boundary)--\r\n")
        return (body, "multipart/form-data; boundary=\(boundary)")
    }
}

/// The contract's `File`, as a client reads it.
struct FileBody: Decodable, Equatable {
    var id: String
    var name: String
    var media_type: String
    var size: Int
    var sha256: String
    var created_at: String
}

extension TestApp {
    /// `POST /api/files/` with one `file` part.
    func upload(_ data: Data, name: String = "file.bin", type: String? = "application/octet-stream", token: String,
                sourceLocation: SourceLocation = #_sourceLocation) async throws -> TestingHTTPResponse {
        let (body, contentType) = TestFiles.multipart([("file", name, type, data)])
        return try await uploadBody(body, contentType: contentType, token: token, sourceLocation: sourceLocation)
    }

    func uploadBody(_ body: ByteBuffer, contentType: String, token: String,
                    sourceLocation: SourceLocation = #_sourceLocation) async throws -> TestingHTTPResponse {
        try await app.testing().sendRequest(
            .POST, "/api/files/", headers: ["Host": "localhost", "Content-Type": contentType, "Authorization": "Bearer \(token)"], body: body,
            fileID: sourceLocation.fileID, filePath: sourceLocation.filePath, line: sourceLocation.line, column: sourceLocation.column
        )
    }

    /// Uploads `data` and answers its `File`; records an issue unless it is accepted.
    func uploaded(_ data: Data, name: String = "file.bin", token: String,
                  sourceLocation: SourceLocation = #_sourceLocation) async throws -> FileBody {
        let response = try await upload(data, name: name, token: token, sourceLocation: sourceLocation)
        try #require(response.status == .created, "upload answered \(response.status): \(response.body.string)", sourceLocation: sourceLocation)
        return try response.decoded(FileBody.self)
    }

    /// Rows in the files tables: (files, chunks, links).
    func fileRows() async throws -> (files: Int, chunks: Int, links: Int) {
        let sql = try db.sql()
        func count(_ table: String) async throws -> Int {
            try await sql.raw("SELECT COUNT(*) AS n FROM \(ident: table)").first()?.decode(column: "n", as: Int.self) ?? -1
        }
        return (try await count("files"), try await count("file_chunks"), try await count("message_files"))
    }
}

extension Data {
    var sha256Hex: String { SHA256.hash(data: self).map { String(format: "%02x", $0) }.joined() }
}
