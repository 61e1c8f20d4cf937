import Foundation
import Vapor

/// JSON as the contract wants it: RFC 3339 UTC times with milliseconds, keys in a stable order,
/// slashes unescaped. The one encoder configuration: responses, problems and stream events all use it.
enum JSONCoding {
    /// `2026-11-25T09:30:00.123Z`.
    static let rfc3339 = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    /// An encoder with the contract's settings (a new one each time: `JSONEncoder` is a class).
    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(rfc3339))
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
