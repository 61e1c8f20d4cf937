import Foundation

/// Reads `.env` files: `KEY=value` lines, `#` comments, optional `export ` prefix,
/// values optionally wrapped in single or double quotes.
enum DotEnv {
    /// The variables in the file at `path`, or none when there is no such file.
    static func load(path: String) throws -> [String: String] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        let contents = try String(contentsOfFile: path, encoding: .utf8)
        return parse(contents)
    }

    static func parse(_ contents: String) -> [String: String] {
        var values: [String: String] = [:]
        for rawLine in contents.split(whereSeparator: \.isNewline) {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst("export ".count)) }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { continue }
            values[key] = unquote(line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces))
        }
        return values
    }

    private static func unquote(_ value: String) -> String {
        for quote in ["\"", "'"] where value.count >= 2 && value.hasPrefix(quote) && value.hasSuffix(quote) {
            let inner = String(value.dropFirst().dropLast())
            return quote == "\"" ? inner.replacingOccurrences(of: "\\n", with: "\n") : inner
        }
        // An unquoted value ends at a comment that follows white space.
        if let comment = value.range(of: " #") {
            return value[..<comment.lowerBound].trimmingCharacters(in: .whitespaces)
        }
        return value
    }
}
