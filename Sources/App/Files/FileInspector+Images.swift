/// What ``FileInspector`` kept of a file (its head, its tail and its size), and the rules that
/// recognise the image and PDF formats in it. Every read is bounds-checked and returns nil out of
/// range, so no input can make the inspection trap: a file that claims a format by its signature
/// but breaks that format's rules is ``FileRefusal/damaged(_:)``, never anything else.
struct InspectedBytes {
    /// The file's first bytes (at most ``FileInspector/headLimit``).
    let head: [UInt8]
    /// The file's last bytes (at most ``FileInspector/tailLimit``).
    let tail: [UInt8]
    let size: Int

    private static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// The IEND chunk: zero length, type, CRC.
    private static let pngEnd: [UInt8] = [0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]
    /// Signature, IHDR (4 + 4 + 13 + 4) and IEND: the smallest a PNG can be.
    private static let pngMinimumSize = 8 + 25 + 12
    /// Header, logical screen descriptor and trailer: the smallest a GIF can be.
    private static let gifMinimumSize = 6 + 7 + 1

    /// The kind of an image or PDF file, recognised by its signature; nil when the file has none
    /// of those signatures.
    func signedKind() throws(FileRefusal) -> FileKind? {
        if matches(Self.pngSignature, at: 0) { return try png() }
        if matches([0xFF, 0xD8, 0xFF], at: 0) { return try jpeg() }
        if matches("GIF87a".utf8, at: 0) || matches("GIF89a".utf8, at: 0) { return try gif() }
        if matches("RIFF".utf8, at: 0), matches("WEBP".utf8, at: 8) { return try webp() }
        if matches("%PDF-".utf8, at: 0) { return try pdf() }
        return nil
    }

    // MARK: Formats

    private func png() throws(FileRefusal) -> FileKind {
        guard size >= Self.pngMinimumSize, tail.suffix(12).elementsEqual(Self.pngEnd) else {
            throw truncated(.png)
        }
        guard read(at: 8, count: 4) == 13, matches("IHDR".utf8, at: 12),
              let width = read(at: 16, count: 4), let height = read(at: 20, count: 4)
        else { throw unreadable(.png) }
        return try image(.png, width: width, height: height)
    }

    private func jpeg() throws(FileRefusal) -> FileKind {
        let end = tail.suffix(32)
        guard zip(end, end.dropFirst()).contains(where: { $0 == 0xFF && $1 == 0xD9 }) else {
            throw truncated(.jpeg)
        }
        // Walk the marker segments after SOI to the first start-of-frame. `position` only grows,
        // and every read past the head fails, so the walk ends.
        var position = 2
        while true {
            guard byte(at: position) == 0xFF else { throw unreadable(.jpeg) }
            while byte(at: position) == 0xFF { position += 1 } // fill bytes
            guard let marker = byte(at: position) else { throw unreadable(.jpeg) }
            switch marker {
            case 0x01, 0xD0...0xD7: // standalone: no length
                position += 1
                continue
            case 0x00, 0xD8, 0xD9, 0xDA: // not a marker, SOI, EOI, or the scan before any frame
                throw unreadable(.jpeg)
            default:
                break
            }
            guard let length = read(at: position + 1, count: 2), length >= 2 else { throw unreadable(.jpeg) }
            if Self.isStartOfFrame(marker) {
                // FF, marker, length (2), precision, height (2), width (2): offsets from the FF.
                guard length >= 8, let height = read(at: position + 4, count: 2),
                      let width = read(at: position + 6, count: 2)
                else { throw unreadable(.jpeg) }
                return try image(.jpeg, width: width, height: height)
            }
            position += 1 + Int(length)
        }
    }

    /// SOF0–SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range.
    private static func isStartOfFrame(_ marker: UInt8) -> Bool {
        switch marker {
        case 0xC0...0xC3, 0xC5...0xC7, 0xC9...0xCB, 0xCD...0xCF: true
        default: false
        }
    }

    private func gif() throws(FileRefusal) -> FileKind {
        guard size >= Self.gifMinimumSize, tail.last == 0x3B else { throw truncated(.gif) }
        guard let width = read(at: 6, count: 2, bigEndian: false),
              let height = read(at: 8, count: 2, bigEndian: false)
        else { throw unreadable(.gif) }
        return try image(.gif, width: width, height: height)
    }

    private func webp() throws(FileRefusal) -> FileKind {
        guard let riffSize = read(at: 4, count: 4, bigEndian: false) else { throw unreadable(.webp) }
        let riffEnd = UInt64(riffSize) + 8
        guard riffEnd <= UInt64(size) else { throw truncated(.webp) }
        /// A read of the first chunk's data, which must lie within the RIFF container.
        func field(_ offset: Int, _ count: Int) -> UInt32? {
            let start = 20 + offset
            guard UInt64(start + count) <= riffEnd else { return nil }
            return read(at: start, count: count, bigEndian: false)
        }
        if matches("VP8 ".utf8, at: 12) {
            // Lossy: a 3-byte frame tag, the start code, then 14-bit width and height (the top
            // two bits of each are a scale).
            guard matches([0x9D, 0x01, 0x2A], at: 23), let width = field(6, 2), let height = field(8, 2) else {
                throw unreadable(.webp)
            }
            return try image(.webp, width: width & 0x3FFF, height: height & 0x3FFF)
        }
        if matches("VP8L".utf8, at: 12) {
            // Lossless: the signature, then width-1 and height-1 packed in 14 bits each.
            guard byte(at: 20) == 0x2F, let bits = field(1, 4) else { throw unreadable(.webp) }
            return try image(.webp, width: (bits & 0x3FFF) + 1, height: ((bits >> 14) & 0x3FFF) + 1)
        }
        if matches("VP8X".utf8, at: 12) {
            // Extended: flags and reserved bytes, then the canvas width-1 and height-1 in 24 bits.
            guard let width = field(4, 3), let height = field(7, 3) else { throw unreadable(.webp) }
            return try image(.webp, width: width + 1, height: height + 1)
        }
        throw unreadable(.webp)
    }

    private func pdf() throws(FileRefusal) -> FileKind {
        let marker = Array("%%EOF".utf8)
        guard tail.count >= marker.count,
              (0...(tail.count - marker.count)).contains(where: { matches(marker, at: $0, in: tail) })
        else { throw .damaged("The PDF document is truncated.") }
        return .pdf
    }

    // MARK: Helpers

    /// An image of a real size: PNG caps each side at 2^31-1, and no format allows zero.
    private func image(_ format: ImageFormat, width: UInt32, height: UInt32) throws(FileRefusal) -> FileKind {
        guard width > 0, height > 0, width <= 0x7FFF_FFFF, height <= 0x7FFF_FFFF else {
            throw .damaged("The \(format.displayName) image has no valid size.")
        }
        return .image(format, width: Int(width), height: Int(height))
    }

    private func truncated(_ format: ImageFormat) -> FileRefusal {
        .damaged("The \(format.displayName) image is truncated.")
    }

    private func unreadable(_ format: ImageFormat) -> FileRefusal {
        .damaged("The \(format.displayName) image header is unreadable.")
    }

    private func byte(at offset: Int) -> UInt8? {
        head.indices.contains(offset) ? head[offset] : nil
    }

    /// An unsigned integer of 1 to 4 bytes at `offset` in the head; nil if any byte lies outside it.
    private func read(at offset: Int, count: Int, bigEndian: Bool = true) -> UInt32? {
        guard (1...4).contains(count), offset >= 0, offset <= head.count - count else { return nil }
        var value: UInt32 = 0
        for index in 0..<count {
            let byte = head[offset + (bigEndian ? index : count - 1 - index)]
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    private func matches(_ expected: some Collection<UInt8>, at offset: Int) -> Bool {
        matches(expected, at: offset, in: head)
    }

    private func matches(_ expected: some Collection<UInt8>, at offset: Int, in bytes: [UInt8]) -> Bool {
        guard offset >= 0, offset <= bytes.count - expected.count else { return false }
        return bytes[offset..<(offset + expected.count)].elementsEqual(expected)
    }
}

private extension ImageFormat {
    /// The format's name in a message for the user.
    var displayName: String {
        switch self {
        case .png: "PNG"
        case .jpeg: "JPEG"
        case .gif: "GIF"
        case .webp: "WebP"
        }
    }
}
