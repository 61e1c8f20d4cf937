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
}
