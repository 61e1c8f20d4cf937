/// The `delta` of a `content_block_delta` event: its `type` and, for text deltas, its `text`.
struct BlockDelta: Equatable, Decodable {
    var type: String
    var text: String?
}

/// Reads the `delta` of a `content_block_delta` event — the one event that comes once per token —
/// in a single pass over its bytes, without the JSON decoder's allocations. It answers only when the
/// input is well-formed JSON of the expected shape; for anything else it answers nil, and the caller
/// falls back to `JSONDecoder`.
struct TextDeltaScanner {
    private let bytes: UnsafeRawBufferPointer
    private var index = 0

    static func scan(_ data: UnsafeRawBufferPointer) -> BlockDelta? {
        var scanner = TextDeltaScanner(bytes: data)
        var delta: BlockDelta?
        guard scanner.object(onKey: { scanner, key in
            guard key == "delta", delta == nil else { return scanner.skipValue() }
            var type: String?
            var text: String?
            let ok = scanner.object { scanner, key in
                switch key {
                case "type":
                    guard type == nil else { return false }
                    type = scanner.string()
                    return type != nil
                case "text":
                    guard text == nil else { return false }
                    text = scanner.string()
                    return text != nil
                default:
                    return scanner.skipValue()
                }
            }
            delta = type.map { BlockDelta(type: $0, text: text) }
            return ok && delta != nil
        }) else { return nil }
        scanner.skipSpace()
        return scanner.index == data.count ? delta : nil
    }

    static func scan(_ data: String) -> BlockDelta? {
        var copy = data
        return copy.withUTF8 { scan(UnsafeRawBufferPointer($0)) }
    }

    private init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// A JSON object at the cursor: calls `onKey` with each key, the cursor on its value, which
    /// `onKey` must read or skip (answering false when it is malformed).
    private mutating func object(onKey: (inout TextDeltaScanner, String) -> Bool) -> Bool {
        skipSpace()
        guard consume(UInt8(ascii: "{")) else { return false }
        var first = true
        while true {
            skipSpace()
            if consume(UInt8(ascii: "}")) { return true }
            if !first {
                guard consume(UInt8(ascii: ",")) else { return false }
                skipSpace()
            }
            first = false
            guard let key = string() else { return false }
            skipSpace()
            guard consume(UInt8(ascii: ":")) else { return false }
            skipSpace()
            guard onKey(&self, key) else { return false }
        }
    }

    /// A JSON string at the cursor, unescaped.
    private mutating func string() -> String? {
        guard consume(UInt8(ascii: "\"")) else { return nil }
        let start = index
        var unescaped: [UInt8]?
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                defer { index += 1 }
                if let unescaped { return String(decoding: unescaped, as: UTF8.self) }
                return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            case UInt8(ascii: "\\"):
                if unescaped == nil { unescaped = Array(bytes[start..<index]) }
                index += 1
                guard index < bytes.count, let decoded = escape() else { return nil }
                unescaped?.append(contentsOf: decoded)
            case 0..<0x20:
                return nil
            default:
                unescaped?.append(byte)
                index += 1
            }
        }
        return nil
    }

    /// The bytes an escape stands for; the cursor is on the character after the backslash.
    private mutating func escape() -> [UInt8]? {
        let byte = bytes[index]
        index += 1
        switch byte {
        case UInt8(ascii: "\""): return [0x22]
        case UInt8(ascii: "\\"): return [0x5C]
        case UInt8(ascii: "/"): return [0x2F]
        case UInt8(ascii: "b"): return [0x08]
        case UInt8(ascii: "f"): return [0x0C]
        case UInt8(ascii: "n"): return [0x0A]
        case UInt8(ascii: "r"): return [0x0D]
        case UInt8(ascii: "t"): return [0x09]
        case UInt8(ascii: "u"):
            guard var scalar = hex4() else { return nil }
            if (0xD800...0xDBFF).contains(scalar) {
                guard consume(UInt8(ascii: "\\")), consume(UInt8(ascii: "u")), let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                return nil
            }
            guard let unicode = Unicode.Scalar(scalar) else { return nil }
            return Array(String(Character(unicode)).utf8)
        default:
            return nil
        }
    }

    private mutating func hex4() -> UInt32? {
        guard index + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            index += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// Skips one JSON value of any kind; false when it is malformed.
    private mutating func skipValue() -> Bool {
        guard index < bytes.count else { return false }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            return string() != nil
        case UInt8(ascii: "{"):
            return object { scanner, _ in scanner.skipValue() }
        case UInt8(ascii: "["):
            index += 1
            var first = true
            while true {
                skipSpace()
                if consume(UInt8(ascii: "]")) { return true }
                if !first {
                    guard consume(UInt8(ascii: ",")) else { return false }
                    skipSpace()
                }
                first = false
                guard skipValue() else { return false }
            }
        default:
            // a number, true, false or null
            let start = index
            while index < bytes.count, !Self.ends(bytes[index]) { index += 1 }
            let word = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
            if word.elementsEqual("true".utf8) || word.elementsEqual("false".utf8) || word.elementsEqual("null".utf8) { return true }
            return !word.isEmpty && word.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || "+-.eE".utf8.contains($0) }
                && Double(String(decoding: word, as: UTF8.self)) != nil
        }
    }

    private static func ends(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") || isSpace(byte)
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    private mutating func skipSpace() {
        while index < bytes.count, Self.isSpace(bytes[index]) { index += 1 }
    }

    private mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }
}
