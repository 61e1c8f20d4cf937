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

    /// A decoder that reads what ``makeEncoder()`` writes (stored JSON, such as a message's attachments).
    static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
                ?? Date(text, strategy: Date.ISO8601FormatStyle()) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an RFC 3339 time"))
            }
            return date
        }
        return decoder
    }

    /// Makes Vapor encode every JSON response this way.
    static func configure() {
        ContentConfiguration.global.use(encoder: makeEncoder(), for: .json)
    }
}

extension UUID {
    /// The contract's form of an identifier: lowercase and hyphenated (written digit by digit:
    /// `uuidString` formats with `sprintf`, then the copy is lowercased).
    public var lowercased: String {
        String(unsafeUninitializedCapacity: 36) { out in
            withUnsafeBytes(of: uuid) { bytes in
                var index = 0
                for (position, byte) in bytes.enumerated() {
                    if position == 4 || position == 6 || position == 8 || position == 10 {
                        out[index] = UInt8(ascii: "-")
                        index += 1
                    }
                    out[index] = uuidHexDigits[Int(byte >> 4)]
                    out[index + 1] = uuidHexDigits[Int(byte & 0x0F)]
                    index += 2
                }
                return index
            }
        }
    }
}

private let uuidHexDigits: [UInt8] = Array("0123456789abcdef".utf8)

extension UUID {
    /// Parses `8-4-4-4-12` hexadecimal digits, either case (what `UUID(uuidString:)` does, through
    /// `sscanf`); nil for anything else.
    init?(hyphenated text: String) {
        var text = text
        let bytes: uuid_t? = text.withUTF8 { utf8 -> uuid_t? in
            guard utf8.count == 36 else { return nil }
            var result: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            let parsed = withUnsafeMutableBytes(of: &result) { out -> Bool in
                var index = 0
                for position in 0..<16 {
                    if position == 4 || position == 6 || position == 8 || position == 10 {
                        guard utf8[index] == UInt8(ascii: "-") else { return false }
                        index += 1
                    }
                    guard let high = Self.hexValue(utf8[index]), let low = Self.hexValue(utf8[index + 1]) else { return false }
                    out[position] = high << 4 | low
                    index += 2
                }
                return true
            }
            return parsed ? result : nil
        }
        guard let bytes else { return nil }
        self.init(uuid: bytes)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
