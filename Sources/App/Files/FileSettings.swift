import Foundation

/// Attachments: how large a file and a user's files may be, where the bytes live, and the tools
/// that read PDFs.
public struct FileSettings: Sendable {
    /// Where files' bytes are kept.
    public enum Storage: Sendable, Equatable {
        /// In the database, in chunks: every instance serves every file with nothing else to run.
        case database
        /// Files in a directory (which every instance must share).
        case directory(String)
    }

    /// The largest file accepted (`FILE_MAX_SIZE`, default 20mb).
    public var maxSize: Int
    /// What one user's files may hold together (`FILE_STORAGE_PER_USER`, default 1gb).
    public var storagePerUser: Int
    public var storage: Storage
    /// The most pages a PDF may have (`FILE_PDF_MAX_PAGES`, default 100: what Claude reads in a request).
    public var pdfMaxPages: Int
    /// How long `pdfinfo` and `pdftotext` may run on one file (`FILE_PROCESS_TIMEOUT`).
    public var processTimeout: Duration
    /// How long an upload may take to arrive (`FILE_UPLOAD_TIMEOUT`, default 5m; other requests have `REQUEST_TIMEOUT`).
    public var uploadTimeout: Duration
    /// A file attached to nothing is deleted after this long (`FILE_UNATTACHED_TTL`, default 1 day).
    public var unattachedLifetime: Duration
    /// The most text kept from a PDF for models that do not read documents.
    public var maxExtractedText: Int

    /// Files one message may carry.
    public static let maxPerMessage = 20
    /// What one message's files may weigh together, and the files of one request to a model:
    /// Anthropic's request limit is 32 MB, base64 makes 4 bytes of 3, and the rest of the request
    /// needs room too.
    public static let maxBytesPerMessage = 22 << 20

    init(_ read: SettingsReader) throws(SettingsError) {
        maxSize = try read.byteCount("FILE_MAX_SIZE", default: 20 << 20)
        storagePerUser = try read.byteCount("FILE_STORAGE_PER_USER", default: 1 << 30)
        pdfMaxPages = try read.int("FILE_PDF_MAX_PAGES", default: 100, in: 1...10_000)
        processTimeout = try read.duration("FILE_PROCESS_TIMEOUT", default: .seconds(30))
        unattachedLifetime = try read.duration("FILE_UNATTACHED_TTL", default: .seconds(86_400))
        uploadTimeout = try read.duration("FILE_UPLOAD_TIMEOUT", default: .seconds(300))
        maxExtractedText = try read.byteCount("FILE_MAX_EXTRACTED_TEXT", default: 4 << 20)
        let raw = read.string("FILE_STORAGE") ?? "database"
        if raw == "database" {
            storage = .database
        } else if raw.hasPrefix("directory:"), case let path = String(raw.dropFirst("directory:".count)), !path.isEmpty {
            storage = .directory(path)
        } else {
            throw SettingsError(key: "FILE_STORAGE", problem: "expected database or directory:<path>, got '\(raw)'")
        }
    }
}
