import Foundation
import NIOCore

/// The contract's `File`: an upload as its owner sees it, on its own and in a message's
/// `attachments`.
struct FileResponse: Codable, Equatable, Sendable, JSONResponse {
    var id: String
    var name: String
    var mediaType: String
    var size: Int
    var sha256: String
    var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, name, mediaType = "media_type", size, sha256, createdAt = "created_at"
    }

    init(_ record: FileRecord) {
        id = record.id.lowercased
        name = record.name
        mediaType = record.mediaType
        size = record.size
        sha256 = record.sha256
        createdAt = record.createdAt
    }

    /// The same bytes as `Codable` through ``JSONCoding`` (messages carry files on the stream's hot path).
    func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"created_at":"#)
        buffer.writeJSONDate(createdAt)
        buffer.writeStaticString(#","id":"#)
        buffer.writeJSONString(id)
        buffer.writeStaticString(#","media_type":"#)
        buffer.writeJSONString(mediaType)
        buffer.writeStaticString(#","name":"#)
        buffer.writeJSONString(name)
        buffer.writeStaticString(#","sha256":"#)
        buffer.writeJSONString(sha256)
        buffer.writeStaticString(#","size":"#)
        buffer.writeJSONInt(size)
        buffer.writeInteger(UInt8(ascii: "}"))
    }
}

extension [FileResponse] {
    func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "["))
        for (index, file) in enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            file.writeJSON(into: &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
    }

    /// The stored form of a message's attachments (`messages.attachments`).
    var storedJSON: String {
        var buffer = ByteBufferAllocator().buffer(capacity: 256 * Swift.max(count, 1))
        writeJSON(into: &buffer)
        return String(buffer: buffer)
    }

    /// Reads `messages.attachments`; a malformed value reads as none rather than hiding the message.
    init(storedJSON: String) {
        guard storedJSON != "[]", let files = try? JSONCoding.makeDecoder().decode([FileResponse].self, from: Data(storedJSON.utf8)) else {
            self = []
            return
        }
        self = files
    }
}

/// A `files` row.
struct FileRecord: Sendable, Equatable {
    var id: UUID
    var userID: UUID
    var name: String
    var mediaType: String
    var size: Int
    var sha256: String
    /// An image's size in pixels, from its header.
    var width: Int? = nil
    var height: Int? = nil
    var pages: Int? = nil
    var storage: String
    var createdAt: Date

    /// The columns ``init(row:)`` reads.
    static let columns = ["id", "user_id", "name", "media_type", "size", "sha256", "width", "height", "pages", "storage", "created_at"]

    var isImage: Bool { mediaType.hasPrefix("image/") }
    var isPDF: Bool { mediaType == "application/pdf" }
}
