import Vapor

/// What can go wrong with files and attachments.
enum FileError: HTTPProblemConvertible, Equatable {
    /// Absent, or someone else's: the two are never told apart.
    case notFound
    case tooLarge(limit: Int)
    case storageQuotaExceeded(limit: Int)
    case refused(FileRefusal)
    /// The upload is not `multipart/form-data` with a boundary.
    case notMultipart
    /// The multipart body is malformed, or has no part named `file`.
    case badUpload(String)
    case badName(String)
    /// PDFs need poppler-utils, which this server does not have.
    case pdfToolsMissing
    case pdfUnreadable(String)
    case tooManyPages(pages: Int, limit: Int)
    /// A message uses the file.
    case inUse
    /// `attachments` of a request names files that are not the caller's, or repeats one.
    case invalidAttachments(String)
    /// A file the chosen model cannot take.
    case unsupportedAttachment(String)
    /// The file's row is here but its bytes are not (a directory this instance does not share).
    case contentMissing

    var problem: HTTPProblem {
        switch self {
        case .notFound:
            return HTTPProblem(.notFound, title: "File not found", detail: "There is no file with this id among yours.")
        case .tooLarge(let limit):
            return HTTPProblem(.payloadTooLarge, title: "File too large", detail: "A file may hold at most \(Self.size(limit)).",
                               code: "file_too_large")
        case .storageQuotaExceeded(let limit):
            return HTTPProblem(.payloadTooLarge, title: "Storage quota exceeded",
                               detail: "Your files may hold \(Self.size(limit)) together; delete some to upload more.",
                               code: "storage_quota_exceeded")
        case .refused(.empty):
            return HTTPProblem(.badRequest, title: "Empty file", detail: "The file is empty.", code: "empty_file")
        case .refused(.unsupported(let detail)):
            return HTTPProblem(.unsupportedMediaType, title: "Unsupported file type", detail: detail, code: "unsupported_file_type")
        case .refused(.damaged(let detail)):
            return HTTPProblem(.badRequest, title: "Damaged file", detail: detail, code: "damaged_file")
        case .notMultipart:
            return HTTPProblem(.unsupportedMediaType, title: "Unsupported Media Type",
                               detail: "Upload a file as multipart/form-data, in a part named 'file'.")
        case .badUpload(let detail):
            return HTTPProblem(.badRequest, title: "Invalid input", detail: "file: \(detail)", fieldErrors: ["file": [detail]])
        case .badName(let detail):
            return HTTPProblem(.badRequest, title: "Invalid input", detail: "name: \(detail)", fieldErrors: ["name": [detail]])
        case .pdfToolsMissing:
            return HTTPProblem(.unsupportedMediaType, title: "PDFs not supported here",
                               detail: "This server cannot read PDFs: poppler-utils (pdfinfo, pdftotext) is not installed.",
                               code: "pdf_unsupported")
        case .pdfUnreadable(let detail):
            return HTTPProblem(.badRequest, title: "Damaged file", detail: "The PDF could not be read: \(detail)", code: "damaged_file")
        case .tooManyPages(let pages, let limit):
            return HTTPProblem(.badRequest, title: "Too many pages", detail: "The PDF has \(pages) pages; at most \(limit) are accepted.",
                               code: "too_many_pages")
        case .inUse:
            return HTTPProblem(.conflict, title: "File in use",
                               detail: "A message uses this file; it goes when the chats that use it are deleted.")
        case .invalidAttachments(let detail):
            return HTTPProblem(.badRequest, title: "Invalid input", detail: "attachments: \(detail)", fieldErrors: ["attachments": [detail]])
        case .unsupportedAttachment(let detail):
            return HTTPProblem(.badRequest, title: "Unsupported attachment", detail: detail, code: "unsupported_attachment")
        case .contentMissing:
            return HTTPProblem(.internalServerError, title: "File content missing",
                               detail: "This server cannot find the file's content (is FILE_STORAGE the same on every instance?).")
        }
    }

    /// `bytes` for people: "20 MB", "512 KB", "100 bytes".
    static func size(_ bytes: Int) -> String {
        if bytes >= 1 << 30, bytes % (1 << 30) == 0 { return "\(bytes >> 30) GB" }
        if bytes >= 1 << 20 { return bytes % (1 << 20) == 0 ? "\(bytes >> 20) MB" : String(format: "%.1f MB", Double(bytes) / 1_048_576) }
        if bytes >= 1 << 10 { return "\(bytes >> 10) KB" }
        return "\(bytes) bytes"
    }
}
