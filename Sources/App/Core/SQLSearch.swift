import SQLKit

/// Case-insensitive substring search in SQL, the same on SQLite and PostgreSQL.
enum SQLSearch {
    /// `LOWER(column) LIKE '%text%'`, with the text's own `%`, `_` and `\` taken literally.
    static func contains(_ column: String, _ text: String) -> SQLQueryString {
        let pattern = "%" + escapeLike(text.lowercased()) + "%"
        return "LOWER(\(ident: column)) LIKE \(bind: pattern) ESCAPE '\\'"
    }

    /// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
    static func escapeLike(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if character == "%" || character == "_" || character == "\\" { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}
