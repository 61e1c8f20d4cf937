import Fluent
import Foundation
import Providers
import SQLKit

/// The files that go with users' messages: which of the caller's files a message may carry,
/// whether the model can read them (checked before anything is stored), and the form the model
/// receives each in.
struct Attachments: Sendable {
    let files: FileLibrary
    let catalog: ModelCatalog

    /// What Anthropic's API takes of one image and one PDF.
    static let anthropicMaxImageBytes = 5 << 20
    static let anthropicMaxImageSide = 8000
    static let anthropicMaxPDFPages = 100

    /// The caller's files `ids`, in the order given. Takes the caller's files lock (so that none
    /// is deleted before the message that uses it is stored); 400 on `attachments` when any is
    /// unknown or someone else's, or when together they weigh more than a request may carry.
    func claim(_ ids: [UUID], for userID: UUID, on db: any Database) async throws -> [FileRecord] {
        guard !ids.isEmpty else { return [] }
        try await db.lockForWriting(FileLibrary.lockKey(userID), on: files.kind)
        let found = try await files.records(ids, ownedBy: userID, on: db)
        let byID = Dictionary(found.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let records = ids.compactMap { byID[$0] }
        guard records.count == ids.count else { throw FileError.invalidAttachments("There is no file with this id among yours.") }
        guard records.reduce(0, { $0 + $1.size }) <= FileSettings.maxBytesPerMessage else {
            throw FileError.invalidAttachments("The files of one message may weigh \(FileError.size(FileSettings.maxBytesPerMessage)) together.")
        }
        return records
    }

    /// The files `messageID` uses, in its order.
    func used(by messageID: UUID, on db: any Database) async throws -> [FileRecord] {
        try await db.sql().select().columns(FileRecord.columns.map { SQLColumn($0, table: "files") }).from("files")
            .join("message_files", on: SQLColumn("file_id", table: "message_files"), .equal, SQLColumn("id", table: "files"))
            .where(SQLColumn("message_id", table: "message_files"), .equal, SQLBind(messageID))
            .orderBy(SQLColumn("position", table: "message_files"))
            .all().map(FileRecord.init(row:))
    }

    /// The files of the chat's current conversation (of its messages before `sequence`, when given).
    func inConversation(_ chatID: UUID, before sequence: Int? = nil, on db: any Database) async throws -> [FileRecord] {
        var query = try db.sql().select().columns(FileRecord.columns.map { SQLColumn($0, table: "files") }).from("files")
            .join("message_files", on: SQLColumn("file_id", table: "message_files"), .equal, SQLColumn("id", table: "files"))
            .join(Message.schema, on: SQLColumn("id", table: Message.schema), .equal, SQLColumn("message_id", table: "message_files"))
            .where(SQLColumn("chat_id", table: "message_files"), .equal, SQLBind(chatID))
            .where(SQLColumn("is_current", table: Message.schema), .equal, SQLLiteral.boolean(true))
        if let sequence { query = query.where(SQLColumn("sequence", table: Message.schema), .lessThan, SQLBind(sequence)) }
        return try await query.all().map(FileRecord.init(row:))
    }

    /// 400 `unsupported_attachment` unless `model` takes every one of `records`: images only with
    /// vision (and, on Anthropic's API, at most 5 MB and 8,000 pixels a side — refused, never
    /// resized); PDFs as documents, or as their text, which a PDF of scanned pages lacks.
    func check(_ records: [FileRecord], model: String, on db: any Database) async throws {
        guard !records.isEmpty else { return }
        let capabilities = catalog.capabilities(of: model)
        let anthropic = catalog.isAnthropic(model)
        for record in records where record.isImage {
            guard capabilities.contains(.vision) else {
                throw FileError.unsupportedAttachment("\(model) cannot see images ('\(record.name)'); choose a model with vision.")
            }
            if anthropic, record.size > Self.anthropicMaxImageBytes {
                throw FileError.unsupportedAttachment("'\(record.name)' is over 5 MB, the most \(model) takes in an image.")
            }
            if anthropic, max(record.width ?? 0, record.height ?? 0) > Self.anthropicMaxImageSide {
                throw FileError.unsupportedAttachment("'\(record.name)' is over 8,000 pixels a side, the most \(model) takes.")
            }
        }
        let pdfs = records.filter(\.isPDF)
        guard !pdfs.isEmpty else { return }
        if capabilities.contains(.documents) {
            if anthropic, let long = pdfs.first(where: { ($0.pages ?? 0) > Self.anthropicMaxPDFPages }) {
                throw FileError.unsupportedAttachment("'\(long.name)' has more than \(Self.anthropicMaxPDFPages) pages, the most \(model) reads.")
            }
            return
        }
        let readable = try await files.withText(pdfs.map(\.id), on: db)
        if let scanned = pdfs.first(where: { !readable.contains($0.id) }) {
            throw FileError.unsupportedAttachment(
                "'\(scanned.name)' has no text (scanned pages?), and \(model) cannot read documents; choose a model that can.")
        }
    }

    /// 400 `unsupported_attachment` when a new message's files cannot fit in one request to
    /// `model`: more than its context holds, or (Claude reading documents) more than 100 PDF pages.
    func checkFits(_ records: [FileRecord], content: String, model: String) throws {
        guard !records.isEmpty else { return }
        let tokens = records.reduce(ConversationWindow.estimatedTokens(content)) { $0 + Self.estimatedTokens($1) }
        let room = catalog.contextWindow(of: model) - catalog.maxTokens
        guard tokens <= room else {
            throw FileError.unsupportedAttachment("These files are about \(tokens) tokens, more than \(model) reads at once (\(room)).")
        }
        let pages = records.reduce(0) { $0 + ($1.pages ?? 0) }
        if catalog.readsDocumentsAsClaude(model), pages > Self.anthropicMaxPDFPages {
            throw FileError.unsupportedAttachment("These PDFs have \(pages) pages together; \(model) reads at most \(Self.anthropicMaxPDFPages) at once.")
        }
    }

    /// Records that `message` uses `records`.
    func link(_ records: [FileRecord], to message: Message, on db: any Database) async throws {
        guard !records.isEmpty else { return }
        var insert = try db.sql().insert(into: "message_files").columns("message_id", "file_id", "chat_id", "position")
        for (position, record) in records.enumerated() {
            insert = insert.values(SQLBind(try message.requireID()), SQLBind(record.id), SQLBind(message.$chat.id), SQLBind(position))
        }
        try await insert.run()
    }

    /// Tokens a file is estimated to take in a prompt: an image about a token per 750 pixels (at
    /// most what a 1.15 megapixel image takes, as the API scales larger ones down), a PDF page
    /// about 2,000, text a token per three bytes.
    static func estimatedTokens(_ record: FileRecord) -> Int {
        if record.isImage { return min((record.width ?? 0) * (record.height ?? 0) / 750, 1600) + 10 }
        if record.isPDF { return (record.pages ?? 1) * 2000 }
        return (record.size + 2) / 3 + 10
    }

    /// The form in which `model` receives `record`.
    func forModel(_ record: FileRecord, model: String, on db: any Database) async throws -> ModelAttachment {
        let capabilities = catalog.capabilities(of: model)
        if record.isImage {
            guard capabilities.contains(.vision) else {
                return .text(name: record.name, text: "(an image the model cannot see)")
            }
            return .image(mediaType: record.mediaType, data: try await files.data(record, on: db))
        }
        if record.isPDF {
            if capabilities.contains(.documents) { return .pdf(name: record.name, data: try await files.data(record, on: db)) }
            return .text(name: record.name, text: try await files.extractedText(of: record.id, on: db))
        }
        return .text(name: record.name, text: String(decoding: try await files.data(record, on: db), as: UTF8.self))
    }
}
