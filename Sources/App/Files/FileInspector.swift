import NIOCore

/// Image formats the server accepts: the ones every model provider and browser can display, so an
/// upload never needs converting.
enum ImageFormat: String, Sendable, Equatable {
    case png, jpeg, gif, webp

    var mediaType: String {
        switch self {
        case .png: "image/png"
        case .jpeg: "image/jpeg"
        case .gif: "image/gif"
        case .webp: "image/webp"
        }
    }
}

/// What a file is, decided from its bytes: the client's `Content-Type` and the name's extension
/// are not trusted for the type (the name only picks among the text media types).
enum FileKind: Sendable, Equatable {
    case image(ImageFormat, width: Int, height: Int)
    case pdf
    /// `text/plain`, `text/markdown`, `text/csv` or `application/json`.
    case text(mediaType: String)

    var mediaType: String {
        switch self {
        case .image(let format, _, _): format.mediaType
        case .pdf: "application/pdf"
        case .text(let mediaType): mediaType
        }
    }
}

/// Why a file is refused. The detail texts are meant for the user who uploaded it.
enum FileRefusal: Error, Equatable, Sendable {
    /// Zero bytes.
    case empty
    /// Not one of the accepted types.
    case unsupported(String)
    /// Claims an accepted type by its first bytes, but is truncated or its header is unreadable.
    case damaged(String)

    static let unsupportedMessage =
        "Only PNG, JPEG, GIF and WebP images, PDF documents and UTF-8 text files are accepted."
}

/// Decides what an uploaded file is while it streams in, so the server never holds a whole upload
/// in memory: it keeps only the first ``headLimit`` bytes (where every accepted format has its
/// header), the last ``tailLimit`` bytes (where they have their end markers), and the state of an
/// incremental UTF-8 validator (a multi-byte sequence may be split across chunks).
///
/// Feed the bytes in order with ``feed(_:)``, then call ``finish(name:)``.
struct FileInspector: Sendable {
    static let headLimit = 1 << 20
    /// A power of two: the tail is a ring indexed by the byte's offset in the file.
    static let tailLimit = 1024

    /// How many bytes were fed.
    private(set) var size = 0
    private var head: [UInt8] = []
    private var tailRing = [UInt8](repeating: 0, count: FileInspector.tailLimit)
    private var utf8 = TextValidator()

    init() {}

    mutating func feed(_ bytes: some Collection<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { feed(contiguous: $0) }
        guard done == nil else { return }
        // Not contiguous (a lazy view, a joined sequence…): copied through a small scratch buffer,
        // so even one-byte chunks cost no heap allocation.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 512) { scratch in
            var filled = 0
            for byte in bytes {
                scratch[filled] = byte
                filled += 1
                if filled == scratch.count {
                    feed(contiguous: UnsafeBufferPointer(rebasing: scratch[..<filled]))
                    filled = 0
                }
            }
            feed(contiguous: UnsafeBufferPointer(rebasing: scratch[..<filled]))
        }
    }

    mutating func feed(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { raw in
            raw.withMemoryRebound(to: UInt8.self) { feed(contiguous: $0) }
        }
    }

    private mutating func feed(contiguous bytes: UnsafeBufferPointer<UInt8>) {
        let count = bytes.count
        guard count > 0 else { return }
        if head.count < Self.headLimit {
            let room = Self.headLimit - head.count
            head.append(contentsOf: UnsafeBufferPointer(rebasing: bytes.prefix(room)))
        }
        // Only the chunk's last `tailLimit` bytes can end up in the tail.
        let skipped = max(0, count - Self.tailLimit)
        let mask = Self.tailLimit - 1
        var slot = (size &+ skipped) & mask
        tailRing.withUnsafeMutableBufferPointer { ring in
            for index in skipped..<count {
                ring[slot] = bytes[index]
                slot = (slot + 1) & mask
            }
        }
        utf8.consume(bytes)
        size += count
    }

    /// The file's last `min(size, tailLimit)` bytes, in order.
    private var tail: [UInt8] {
        let count = min(size, Self.tailLimit)
        let mask = Self.tailLimit - 1
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        for offset in (size - count)..<size {
            bytes.append(tailRing[offset & mask])
        }
        return bytes
    }

    /// What the fed bytes are. `name` (the uploaded file's name) only chooses the media type of a
    /// text file; an image or PDF signature always wins over it.
    func finish(name: String) throws(FileRefusal) -> FileKind {
        guard size > 0 else { throw .empty }
        let bytes = InspectedBytes(head: head, tail: tail, size: size)
        if let kind = try bytes.signedKind() {
            return kind
        }
        guard utf8.isCompleteAndValid else { throw .unsupported(FileRefusal.unsupportedMessage) }
        return .text(mediaType: Self.textMediaType(name: name))
    }

    /// The text media type the name's extension asks for; `text/plain` for any other extension
    /// (`.html` and `.svg` included: they are served and shown as plain text, never rendered).
    static func textMediaType(name: String) -> String {
        let base = name.split(separator: "/").last ?? Substring(name)
        guard let dot = base.lastIndex(of: "."), dot != base.startIndex else { return "text/plain" }
        switch base[base.index(after: dot)...].lowercased() {
        case "md", "markdown": return "text/markdown"
        case "csv": return "text/csv"
        case "json": return "application/json"
        default: return "text/plain"
        }
    }
}

/// An incremental UTF-8 validator that also refuses the C0 control characters a text file has no
/// business containing (NUL above all: it marks binary data). It is a small state machine, so a
/// chunk boundary may fall anywhere, even inside a multi-byte sequence.
///
/// Refused: stray continuation bytes, overlong encodings (C0, C1, E0 80..9F, F0 80..8F), UTF-16
/// surrogates (ED A0..BF), code points above U+10FFFF (F4 90.., F5..FF), and a sequence the file
/// ends in the middle of. Allowed among C0 controls: tab, LF, CR and form feed only.
private struct TextValidator: Sendable {
    /// Continuation bytes still expected for the current sequence.
    private var pending: UInt8 = 0
    /// The range the next continuation byte must fall in (narrower after E0, ED, F0 and F4).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF
    private var valid = true

    var isCompleteAndValid: Bool { valid && pending == 0 }

    mutating func consume(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard valid else { return }
        for byte in bytes {
            if pending > 0 {
                guard byte >= lower, byte <= upper else { valid = false; return }
                pending -= 1
                lower = 0x80
                upper = 0xBF
                continue
            }
            switch byte {
            case 0x09, 0x0A, 0x0C, 0x0D, 0x20...0x7F: continue
            case 0xC2...0xDF: pending = 1
            case 0xE0: pending = 2; lower = 0xA0
            case 0xE1...0xEC, 0xEE, 0xEF: pending = 2
            case 0xED: pending = 2; upper = 0x9F
            case 0xF0: pending = 3; lower = 0x90
            case 0xF1...0xF3: pending = 3
            case 0xF4: pending = 3; upper = 0x8F
            default: valid = false; return // other C0 controls, 80..C1, F5..FF
            }
        }
    }
}
