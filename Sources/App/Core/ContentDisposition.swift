import Foundation

/// `Content-Disposition` for a download or an inline file: `filename` in plain ASCII (anything
/// else becomes `_`, so no quote, backslash or control character can reach the header) for old
/// clients, and the exact name as `filename*` (RFC 6266, percent-encoded UTF-8 per RFC 8187).
enum ContentDisposition {
    static func header(inline: Bool = false, name: String) -> String {
        let ascii = String(name.unicodeScalars.map { scalar -> Character in
            let allowed = scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || " -_.()".unicodeScalars.contains(scalar))
            return allowed ? Character(scalar) : "_"
        })
        let encoded = name.addingPercentEncoding(withAllowedCharacters: .rfc5987) ?? ascii
        return (inline ? "inline" : "attachment") + "; filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }
}

extension CharacterSet {
    /// `attr-char` of RFC 5987: what a `filename*` value holds unencoded.
    static let rfc5987 = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~")
}
