import Foundation
import Vapor

/// JSON as the contract wants it: RFC 3339 UTC times with milliseconds (``RFC3339``), keys in a
/// stable order, slashes unescaped. The one encoder configuration; the hot responses and stream
/// events write the same bytes by hand (``JSONWritable``).
enum JSONCoding {
    /// An encoder with the contract's settings (a new one each time: `JSONEncoder` is a class).
    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.string(date))
        }
        return encoder
    }

    /// Makes Vapor encode every JSON response this way.
    static func configure() {
        ContentConfiguration.global.use(encoder: makeEncoder(), for: .json)
    }
}

extension UUID {
    /// The contract's form of an identifier: lowercase and hyphenated.
    public var lowercased: String { uuidString.lowercased() }
}
