/// Collects validation messages per field, so a client learns of every bad field at once.
public struct FieldErrors: Sendable {
    public private(set) var messages: [String: [String]] = [:]

    public init() {}

    public mutating func add(_ field: String, _ message: String) {
        messages[field, default: []].append(message)
    }

    public var isEmpty: Bool { messages.isEmpty }

    /// Throws ``RequestError/invalidFields(_:)`` when any message was added.
    public func throwIfAny() throws(RequestError) {
        if !messages.isEmpty { throw RequestError.invalidFields(messages) }
    }

    /// Reads a required string field: records "This field is required." when absent or blank.
    public mutating func required(_ value: String?, _ field: String) -> String {
        guard let value, !value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            add(field, "This field is required.")
            return ""
        }
        checkText(value, field)
        return value
    }

    /// Records a problem when `value` holds a NUL character: no text the service keeps may (and
    /// PostgreSQL stores none).
    public mutating func checkText(_ value: String?, _ field: String) {
        if let value, value.utf8.contains(0) { add(field, "This field may not contain NUL characters.") }
    }

    /// Records a problem when `value` is longer than `limit` allows, in characters or in bytes.
    public mutating func checkLength(_ value: String?, _ field: String, _ limit: TextLimit) {
        guard let value else { return }
        if let problem = limit.problem(with: value) { add(field, problem) }
    }
}

/// How long a text field may be: in characters — Unicode scalar values, as JSON Schema's
/// `maxLength` counts them (not grapheme clusters: one "character" on screen may hold any number
/// of combining marks) — and in UTF-8 bytes, the size everything downstream pays for. The OpenAPI
/// document states both (`maxLength` and `x-max-bytes`).
public struct TextLimit: Sendable, Equatable {
    public var characters: Int
    public var bytes: Int

    /// `characters` scalars, and at most four bytes each unless told otherwise.
    public init(characters: Int, bytes: Int? = nil) {
        self.characters = characters
        self.bytes = bytes ?? characters * 4
    }

    /// What is wrong with `value`'s length, in words for the client; nil when it fits.
    public func problem(with value: String) -> String? {
        if value.utf8.count > bytes {
            // Counted in bytes first: cheap, and it bounds the scalar count below.
            return value.unicodeScalars.count > characters
                ? "Ensure this field has no more than \(characters) characters."
                : "Ensure this field has no more than \(bytes) bytes (UTF-8)."
        }
        return value.unicodeScalars.count > characters ? "Ensure this field has no more than \(characters) characters." : nil
    }

    /// A chat's title.
    public static let title = TextLimit(characters: 200)
    /// A person's display name.
    public static let name = TextLimit(characters: 150)
    /// A search query.
    public static let query = TextLimit(characters: 200)
    /// An API key's name.
    public static let keyName = TextLimit(characters: 100)
}
