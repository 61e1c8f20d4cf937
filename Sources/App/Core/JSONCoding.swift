import Vapor

/// JSON as the contract wants it: RFC 3339 UTC times with milliseconds, keys in a stable order.
enum JSONCoding {
    /// `2026-11-25T09:30:00.123Z`.
    static let rfc3339 = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    static func configure() {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(rfc3339))
        }
        ContentConfiguration.global.use(encoder: encoder, for: .json)
    }
}

extension UUID {
    /// The contract's form of an identifier: lowercase and hyphenated.
    public var lowercased: String { uuidString.lowercased() }
}
