import Foundation

/// How a client asks for a page of any list: `limit` (1 to the list's maximum) and `cursor` (from
/// the previous page's `next`), parsed the same way everywhere.
enum PageQuery {
    /// `raw` as a page size: the default when absent, else a whole number from 1 to `max`.
    static func limit(_ raw: String?, default fallback: Int, max: Int, into errors: inout FieldErrors) -> Int {
        guard let raw else { return fallback }
        guard let value = Int(raw), (1...max).contains(value) else {
            errors.add("limit", "Must be a whole number from 1 to \(max).")
            return fallback
        }
        return value
    }
}

/// The opaque cursors lists hand out, in one format: base64url (no padding) of
/// `<list>|<field>|…`. The list's name keeps one list's cursor from being read as another's.
/// Cursors are short (``maxBytes``): anything longer is refused before it is decoded.
enum PageCursor {
    static let maxBytes = 128

    static func encode(_ list: String, _ fields: [String]) -> String {
        Data(([list] + fields).joined(separator: "|").utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// The `count` fields of `raw` when it is a cursor of `list`; nil for anything else.
    static func decode(_ raw: String, list: String, fields count: Int) -> [Substring]? {
        guard raw.utf8.count <= maxBytes else { return nil }
        var base64 = raw.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == count + 1, parts[0] == list else { return nil }
        return Array(parts.dropFirst())
    }
}
