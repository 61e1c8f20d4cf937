import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import NIOConcurrencyHelpers

/// The reads behind every page load — a user's chat list, a chat with its messages — made straight
/// through the database driver: one statement per request, its rows read column by column into
/// the response types. No Fluent model, no `Codable` row decoder, no SQL built by a query builder:
/// those were most of a request's cost. The statements differ between PostgreSQL and SQLite only
/// in their placeholders and in how an id is bound (a `uuid`, or the uppercase text Fluent stores
/// in SQLite); the tests run every read on both.
enum ChatReads {
    /// A user's chats, newest activity first, `query.limit + 1` of them at most (one more than a
    /// page, to know whether another follows).
    static func summaries(of userID: UUID, _ query: ChatListQuery.Valid, on db: any Database) async throws -> [ChatSummaryRow] {
        var binds: [Bind] = [.uuid(userID)]
        if let search = query.search { binds.append(.text("%" + SQLSearch.escapeLike(search.lowercased()) + "%")) }
        if let cursor = query.cursor { binds += [.date(cursor.activityAt), .date(cursor.activityAt), .uuid(cursor.id)] }
        binds.append(.int(query.limit + 1))
        let statement = chatLists[(query.search == nil ? 0 : 2) + (query.cursor == nil ? 0 : 1)]
        return try await rows(statement, binds, on: db) { columns in try ChatSummaryRow(reading: &columns) }
    }

    /// The chat `chatID` if `userID` owns it, with its current conversation's messages from
    /// `sequence` on, in order (one statement: the chat's columns repeat on each message's row);
    /// nil when there is no such chat of theirs.
    static func chat(_ chatID: UUID, ownedBy userID: UUID, messagesFrom sequence: Int = 0,
                     on db: any Database) async throws -> (chat: ChatSummaryRow, messages: [MessageResponse])? {
        let rows = try await rows(chatWithMessages, [.int(sequence), .uuid(chatID), .uuid(userID)], on: db) { columns in
            (try ChatSummaryRow(reading: &columns), try columns.isNull() ? nil : try MessageRow.read(&columns))
        }
        guard let first = rows.first else { return nil }
        return (first.0, rows.compactMap(\.1))
    }

    /// The messages of `chatID`'s current conversation from `sequence` on, in order.
    static func messages(of chatID: UUID, from sequence: Int = 0, on db: any Database) async throws -> [MessageResponse] {
        try await rows(messagesOfChat, [.uuid(chatID), .int(sequence)], on: db) { columns in try MessageRow.read(&columns) }
    }

    /// The versions at `messageID`'s turn in `chatID`: the messages that follow the same message
    /// (or, for the first question, none) with the same role, in the order they were written;
    /// empty when the chat has no such message.
    static func versions(of messageID: UUID, in chatID: UUID, on db: any Database) async throws -> [MessageResponse] {
        try await rows(versionsOfMessage, [.uuid(chatID), .uuid(messageID)], on: db) { columns in try MessageRow.read(&columns) }
    }

    /// Every message of `chatID`, every version of every turn (`current` says which are the
    /// conversation), in order of turn and version: what an export takes away.
    static func allMessages(of chatID: UUID, on db: any Database) async throws -> [MessageResponse] {
        try await rows(everyMessageOfChat, [.uuid(chatID)], on: db) { columns in try MessageRow.read(&columns) }
    }

    /// The message `id` as stored; nil when it is gone.
    static func message(_ id: UUID, on db: any Database) async throws -> MessageResponse? {
        try await rows(messageByID, [.uuid(id)], on: db) { columns in try MessageRow.read(&columns) }.first
    }

    static let summaryColumns = "id, title, model, system, created_at, updated_at, last_message_at, activity_at, revision, tools"
    static let messageColumns = MessageRow.selected.joined(separator: ", ")

    /// The chat list's statement: without and with a title search, each without and with a cursor.
    private static let chatLists: [Statement] = [false, true].flatMap { search in
        [false, true].map { cursor in
            Statement("SELECT \(summaryColumns) FROM chats WHERE user_id = ?"
                + (search ? " AND LOWER(title) LIKE ? ESCAPE '\\'" : "")
                + (cursor ? " AND (activity_at < ? OR (activity_at = ? AND id < ?))" : "")
                + " ORDER BY activity_at DESC, id DESC LIMIT ?")
        }
    }
    private static let chatWithMessages = Statement(
        "SELECT " + (qualified(summaryColumns, "c") + ", " + qualified(messageColumns, "m"))
            + " FROM chats c LEFT JOIN messages m ON m.chat_id = c.id AND m.is_current AND m.sequence >= ?"
            + " WHERE c.id = ? AND c.user_id = ? ORDER BY m.sequence")
    private static let messageByID = Statement("SELECT \(messageColumns) FROM messages WHERE id = ?")
    private static let messagesOfChat = Statement(
        "SELECT \(messageColumns) FROM messages WHERE chat_id = ? AND is_current AND sequence >= ? ORDER BY sequence")

    private static let everyMessageOfChat = Statement(
        "SELECT \(messageColumns) FROM messages WHERE chat_id = ? ORDER BY sequence, version, created_at")

    private static let versionsOfMessage = Statement(
        "SELECT " + qualified(messageColumns, "m") + " FROM messages t JOIN messages m ON m.chat_id = t.chat_id AND m.role = t.role"
            + " AND (m.parent_id = t.parent_id OR (m.parent_id IS NULL AND t.parent_id IS NULL))"
            + " WHERE t.chat_id = ? AND t.id = ? ORDER BY m.version")

    private static func qualified(_ columns: String, _ table: String) -> String {
        columns.split(separator: ", ").map { "\(table).\($0)" }.joined(separator: ", ")
    }

    // MARK: The two drivers

    enum Bind {
        case uuid(UUID)
        case text(String)
        case int(Int)
        case date(Date)
    }

    /// A statement written with `?` placeholders, in each driver's numbering (`$1` for PostgreSQL,
    /// `?1` for SQLite). The SQL holds no `?` other than placeholders.
    struct Statement: Sendable {
        let postgres: String
        let sqlite: String

        init(_ sql: String) {
            var postgres = "", sqlite = ""
            var number = 0
            for character in sql {
                if character == "?" {
                    number += 1
                    postgres += "$\(number)"
                    sqlite += "?\(number)"
                } else {
                    postgres.append(character)
                    sqlite.append(character)
                }
            }
            self.postgres = postgres
            self.sqlite = sqlite
        }
    }

    /// Runs `statement` and reads each row with `read`, on whichever database `db` is.
    static func rows<Row: Sendable>(_ statement: Statement, _ binds: [Bind], on db: any Database,
                                    _ read: @escaping @Sendable (inout ColumnReader) throws -> Row) async throws -> [Row] {
        if let postgres = db as? any PostgresDatabase {
            let values = try binds.map { bind throws(TimeOutOfRange) -> PostgresData in
                switch bind {
                case .uuid(let id): return PostgresData(uuid: id)
                case .text(let text): return PostgresData(string: text)
                case .int(let int): return PostgresData(int: int)
                case .date(let date):
                    // The driver's conversion traps on a time it cannot represent: never let one reach it.
                    guard ChatCursor.validSeconds.contains(date.timeIntervalSinceReferenceDate) else { throw TimeOutOfRange() }
                    return PostgresData(date: date)
                }
            }
            let rows = NIOLockedValueBox<[Row]>([])
            try await postgres.query(statement.postgres, values) { row in
                var columns = ColumnReader(postgres: row)
                let value = try read(&columns)
                rows.withLockedValue { $0.append(value) }
            }.get()
            return rows.withLockedValue { $0 }
        }
        if let sqlite = db as? any SQLiteDatabase {
            let values = binds.map { bind -> SQLiteData in
                switch bind {
                case .uuid(let id): .text(id.uuidString)
                case .text(let text): .text(text)
                case .int(let int): .integer(int)
                case .date(let date): .float(date.timeIntervalSince1970)
                }
            }
            let rows = try await sqlite.withConnection { connection in try await connection.query(statement.sqlite, values) }
            return try rows.map { row in
                var columns = ColumnReader(sqlite: row)
                return try read(&columns)
            }
        }
        throw SQLDatabaseRequired()
    }
}

/// A time no database stores was about to be bound (a caller's check failed to refuse it).
struct TimeOutOfRange: Error, CustomStringConvertible {
    var description: String { "a time outside 0001–9999 was about to be sent to the database" }
}

/// The columns of one row, read in order, whichever driver produced it.
struct ColumnReader {
    private enum Source {
        case postgres(PostgresRow.Iterator)
        case sqlite([SQLiteColumn], index: Int)
    }

    private var source: Source

    init(postgres row: PostgresRow) { source = .postgres(row.makeIterator()) }
    init(sqlite row: SQLiteRow) { source = .sqlite(row.columns, index: 0) }

    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    private mutating func nextCell() throws -> PostgresCell {
        guard case .postgres(var iterator) = source, let cell = iterator.next() else { throw Malformed(description: "missing column") }
        source = .postgres(iterator)
        return cell
    }

    private mutating func nextData() throws -> SQLiteData {
        guard case .sqlite(let columns, let index) = source, index < columns.count else { throw Malformed(description: "missing column") }
        source = .sqlite(columns, index: index + 1)
        return columns[index].data
    }

    private var isPostgres: Bool {
        if case .postgres = source { return true }
        return false
    }

    /// Whether the next column is null, without reading it.
    func isNull() throws -> Bool {
        switch source {
        case .postgres(var iterator): return iterator.next()?.bytes == nil
        case .sqlite(let columns, let index): return index >= columns.count || columns[index].data == .null
        }
    }

    mutating func uuid() throws -> UUID {
        if isPostgres { return try nextCell().decode(UUID.self) }
        guard case .text(let text) = try nextData(), let id = UUID(hyphenated: text) else { throw Malformed(description: "not an id") }
        return id
    }

    /// An id as the contract writes it (lowercase text), without parsing it where the database
    /// already holds text.
    mutating func idString() throws -> String {
        if isPostgres { return try nextCell().decode(UUID.self).lowercased }
        guard case .text(let text) = try nextData(), text.utf8.count == 36 else { throw Malformed(description: "not an id") }
        return text.lowercased()
    }

    mutating func optionalIDString() throws -> String? {
        if isPostgres { return try nextCell().decode(UUID?.self)?.lowercased }
        switch try nextData() {
        case .text(let text) where text.utf8.count == 36: return text.lowercased()
        case .null: return nil
        default: throw Malformed(description: "not an id")
        }
    }

    mutating func bool() throws -> Bool {
        if isPostgres { return try nextCell().decode(Bool.self) }
        guard case .integer(let value) = try nextData() else { throw Malformed(description: "not a boolean") }
        return value != 0
    }

    mutating func string() throws -> String {
        if isPostgres { return try nextCell().decode(String.self) }
        guard case .text(let text) = try nextData() else { throw Malformed(description: "not text") }
        return text
    }

    mutating func optionalString() throws -> String? {
        if isPostgres { return try nextCell().decode(String?.self) }
        switch try nextData() {
        case .text(let text): return text
        case .null: return nil
        default: throw Malformed(description: "not text")
        }
    }

    mutating func int() throws -> Int {
        if isPostgres { return try nextCell().decode(Int.self) }
        guard case .integer(let value) = try nextData() else { throw Malformed(description: "not an integer") }
        return value
    }

    mutating func date() throws -> Date {
        guard let date = try optionalDate() else { throw Malformed(description: "not a time") }
        return date
    }

    mutating func optionalDate() throws -> Date? {
        if isPostgres { return try nextCell().decode(Date?.self) }
        let seconds: Double
        switch try nextData() {
        case .float(let value): seconds = value
        case .integer(let value): seconds = Double(value)
        case .null: return nil
        default: throw Malformed(description: "not a time")
        }
        // As SQLiteNIO reads a stored time: to the microsecond, so that it compares equal to itself.
        return Date(timeIntervalSinceReferenceDate: ((seconds - Date.timeIntervalBetween1970AndReferenceDate) * 1e6).rounded() / 1e6)
    }
}

extension ChatSummaryRow {
    /// Reads ``ChatReads/summaryColumns``.
    init(reading columns: inout ColumnReader) throws {
        self.init(id: try columns.uuid(), title: try columns.string(), model: try columns.string(), system: try columns.optionalString(),
                  createdAt: try columns.optionalDate(), updatedAt: try columns.optionalDate(),
                  lastMessageAt: try columns.optionalDate(), activityAt: try columns.date(), revision: try columns.int(),
                  tools: Chat.tools(fromJSON: try columns.string()))
    }
}
