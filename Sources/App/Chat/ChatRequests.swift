import Vapor

/// Checks of what users write, shared by every request that carries it.
struct ChatInputRules {
    let settings: ChatSettings
    let catalog: ModelCatalog
    let tools: ToolCatalog

    func content(_ value: String?, _ field: String, into errors: inout FieldErrors) -> String {
        let content = errors.required(value, field)
        errors.checkLength(content, field, settings.messageLimit)
        return content
    }

    /// A message's text, which may be empty (or absent) when it carries files.
    func content(_ value: String?, withFiles files: [UUID], into errors: inout FieldErrors) -> String {
        guard !files.isEmpty else { return content(value, "content", into: &errors) }
        let content = value ?? ""
        errors.checkText(content, "content")
        errors.checkLength(content, "content", settings.messageLimit)
        return content
    }

    /// `attachments`: at most ``FileSettings/maxPerMessage`` file ids, each once. Whose they are
    /// is checked when the message is stored.
    func attachments(_ value: [String]?, into errors: inout FieldErrors) -> [UUID] {
        guard let value else { return [] }
        guard value.count <= FileSettings.maxPerMessage else {
            errors.add("attachments", "At most \(FileSettings.maxPerMessage) files may go with one message.")
            return []
        }
        var ids: [UUID] = []
        for raw in value {
            guard let id = UUID(hyphenated: raw) else {
                errors.add("attachments", "Each attachment is a file id (a UUID).")
                return []
            }
            guard !ids.contains(id) else {
                errors.add("attachments", "A file may be attached once per message.")
                return []
            }
            ids.append(id)
        }
        return ids
    }

    func title(_ value: String, into errors: inout FieldErrors) -> String {
        errors.checkText(value, "title")
        let title = value.trimmingCharacters(in: .whitespacesAndNewlines)
        if title.isEmpty { errors.add("title", "This field may not be blank.") }
        errors.checkLength(title, "title", .title)
        return title
    }

    func system(_ value: String?, into errors: inout FieldErrors) -> String? {
        guard let value, !value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return nil }
        errors.checkText(value, "system")
        errors.checkLength(value, "system", settings.systemLimit)
        return value
    }

    /// A chat's `tools`: each `<server>.<tool>` or `<server>.*` of a configured MCP server, each once.
    func tools(_ value: [String], into errors: inout FieldErrors) -> [String] {
        guard value.count <= ToolCatalog.maxSelection else {
            errors.add("tools", "At most \(ToolCatalog.maxSelection) tools.")
            return []
        }
        for entry in value { errors.checkText(entry, "tools") }
        for problem in tools.problems(in: value) ?? [] { errors.add("tools", problem + ".") }
        var seen = Set<String>()
        return value.filter { seen.insert($0).inserted }
    }

    func model(_ value: String, into errors: inout FieldErrors) -> String {
        if !catalog.contains(value) {
            let known = catalog.modelIDs
            let choices = known.prefix(20).joined(separator: ", ") + (known.count > 20 ? ", … (GET /api/models/ lists all \(known.count))" : "")
            let shown = value.unicodeScalars.count > 100 ? String(String.UnicodeScalarView(value.unicodeScalars.prefix(100))) + "…" : value
            errors.add("model", "Unknown model '\(shown)'; choose one of: \(choices).")
        }
        return value
    }
}

/// `POST /api/chat/`.
struct CreateChatRequest: Decodable {
    var title: String?
    var content: String?
    var model: String?
    var system: String?
    var tools: [String]?
    var attachments: [String]?

    struct Valid {
        var title: String?
        /// The first message: nil for none (an empty text with files is one).
        var content: String?
        var model: String
        var system: String?
        var tools: [String] = []
        var attachments: [UUID] = []
    }

    func validated(_ rules: ChatInputRules) throws(RequestError) -> Valid {
        var errors = FieldErrors()
        let title = self.title.map { rules.title($0, into: &errors) }
        let attachments = rules.attachments(self.attachments, into: &errors)
        let content = self.content != nil || !attachments.isEmpty ? rules.content(self.content, withFiles: attachments, into: &errors) : nil
        let model = rules.model(self.model ?? rules.catalog.defaultModel, into: &errors)
        let system = rules.system(self.system, into: &errors)
        let tools = rules.tools(self.tools ?? [], into: &errors)
        try errors.throwIfAny()
        return Valid(title: title, content: content, model: model, system: system, tools: tools, attachments: attachments)
    }
}

/// `PATCH /api/chat/<id>/`: only what is sent changes; `system: null` (or "") removes the prompt.
struct UpdateChatRequest: Decodable {
    var title: PatchField<String>
    var model: PatchField<String>
    var system: PatchField<String>
    var tools: PatchField<[String]>

    enum CodingKeys: String, CodingKey { case title, model, system, tools }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        title = try container.decode(PatchField<String>.self, forKey: .title)
        model = try container.decode(PatchField<String>.self, forKey: .model)
        system = try container.decode(PatchField<String>.self, forKey: .system)
        tools = try container.decode(PatchField<[String]>.self, forKey: .tools)
    }

    struct Valid {
        var title: String?
        var model: String?
        /// nil: leave as is; .some(nil): remove.
        var system: String??
        /// nil: leave as is (`null` and `[]` alike offer none).
        var tools: [String]?
    }

    func validated(_ rules: ChatInputRules) throws(RequestError) -> Valid {
        var errors = FieldErrors()
        var valid = Valid()
        switch title {
        case .absent: break
        case .null: errors.add("title", "This field may not be null.")
        case .value(let value): valid.title = rules.title(value, into: &errors)
        }
        switch model {
        case .absent: break
        case .null: errors.add("model", "This field may not be null.")
        case .value(let value): valid.model = rules.model(value, into: &errors)
        }
        switch system {
        case .absent: break
        case .null: valid.system = .some(nil)
        case .value(let value): valid.system = .some(rules.system(value, into: &errors))
        }
        switch tools {
        case .absent: break
        case .null: valid.tools = []
        case .value(let value): valid.tools = rules.tools(value, into: &errors)
        }
        try errors.throwIfAny()
        return valid
    }
}

/// `POST /api/chat/<id>/send/`.
struct SendMessageRequest: Decodable {
    var content: String?
    var attachments: [String]?

    /// What the user sends: text, files, or both.
    struct Valid {
        var content: String
        var attachments: [UUID]
    }

    func validated(_ rules: ChatInputRules) throws(RequestError) -> Valid {
        var errors = FieldErrors()
        let attachments = rules.attachments(self.attachments, into: &errors)
        let content = rules.content(self.content, withFiles: attachments, into: &errors)
        try errors.throwIfAny()
        return Valid(content: content, attachments: attachments)
    }
}

/// `POST /api/chat/<id>/regenerate/`: optionally, another model for the new reply.
struct RegenerateRequest: Decodable {
    var model: String?

    func validated(_ rules: ChatInputRules) throws(RequestError) -> String? {
        var errors = FieldErrors()
        let model = self.model.map { rules.model($0, into: &errors) }
        try errors.throwIfAny()
        return model
    }
}

/// `POST /api/chat/<id>/edit/`: which user message, and its new text.
struct EditMessageRequest: Decodable {
    var messageID: String?
    var content: String?
    var attachments: [String]?

    enum CodingKeys: String, CodingKey {
        case messageID = "message_id", content, attachments
    }

    struct Valid {
        var messageID: UUID
        var content: String
        /// nil: the edited message's files stay.
        var attachments: [UUID]?
    }

    func validated(_ rules: ChatInputRules) throws(RequestError) -> Valid {
        var errors = FieldErrors()
        var id: UUID?
        switch messageID {
        case nil: errors.add("message_id", "This field is required.")
        case let raw?:
            id = UUID(hyphenated: raw)
            if id == nil { errors.add("message_id", "Must be a UUID.") }
        }
        let attachments = self.attachments.map { rules.attachments($0, into: &errors) }
        // Without `attachments` the original's files stay, so the text may be empty; whether the
        // message then carries anything is checked against what it had.
        let content = attachments == nil && self.content != nil && self.content?.isEmpty == true
            ? "" : rules.content(self.content, withFiles: attachments ?? [], into: &errors)
        try errors.throwIfAny()
        guard let id else { throw .invalidFields(["message_id": ["This field is required."]]) }
        return Valid(messageID: id, content: content, attachments: attachments)
    }
}

/// The query of `GET /api/chat/`.
struct ChatListQuery: Decodable {
    var limit: String?
    var cursor: String?
    var q: String?

    struct Valid {
        var limit: Int
        var cursor: ChatCursor?
        var search: String?
    }

    func validated(_ settings: ChatSettings) throws -> Valid {
        var errors = FieldErrors()
        let limit = PageQuery.limit(self.limit, default: settings.defaultPageSize, max: settings.maxPageSize, into: &errors)
        let search = q?.trimmingCharacters(in: .whitespacesAndNewlines)
        errors.checkLength(search, "q", .query)
        errors.checkText(search, "q")
        // An empty cursor is no cursor (the first page), as other empty parameters are.
        let raw = self.cursor.flatMap { $0.isEmpty ? nil : $0 }
        let cursor = raw.flatMap(ChatCursor.init)
        if raw != nil, cursor == nil { errors.add("cursor", "Not a cursor this server issued.") }
        try errors.throwIfAny()
        return Valid(limit: limit, cursor: cursor, search: search?.isEmpty == true ? nil : search)
    }
}

/// A position in the chat list: the activity time and id of the last chat of a page.
struct ChatCursor: Equatable {
    var activityAt: Date
    var id: UUID

    init(activityAt: Date, id: UUID) {
        self.activityAt = activityAt
        self.id = id
    }

    /// The times a cursor may hold: those a stored time can have (0001-01-01 to 9999-12-31, which
    /// both databases store). A time outside them is no cursor this server issued, and must never
    /// reach a driver's conversion (PostgreSQL's traps on a time it cannot represent).
    static let validSeconds: ClosedRange<Double> = -63_113_904_000 ... 252_423_993_599

    /// Parses the opaque form made by ``encoded`` (a ``PageCursor``); nil for anything else.
    init?(_ raw: String) {
        guard let fields = PageCursor.decode(raw, list: "chats", fields: 2), let seconds = Double(fields[0]),
              Self.validSeconds.contains(seconds), let id = UUID(hyphenated: String(fields[1])) else { return nil }
        self.init(activityAt: Date(timeIntervalSinceReferenceDate: seconds), id: id)
    }

    var encoded: String {
        // The exact bits of the stored time, so that it compares equal to it in the database.
        PageCursor.encode("chats", ["\(activityAt.timeIntervalSinceReferenceDate)", id.lowercased])
    }
}
