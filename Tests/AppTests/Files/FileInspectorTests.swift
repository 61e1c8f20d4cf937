@testable import App
import NIOCore
import Testing

/// A minimal valid file of each accepted binary kind, built in code, with what it must be seen as.
private struct Sample: Sendable, CustomTestStringConvertible {
    let label: String
    let bytes: [UInt8]
    let kind: FileKind
    /// The prefix that carries the signature: any longer prefix of the file is damaged…
    let signatureLength: Int
    /// …except those missing only this many final bytes (the newline after a PDF's `%%EOF`).
    var slack = 0
    var testDescription: String { label }

    static let all: [Sample] = [
        Sample(label: "PNG 1x1", bytes: pngPixel, kind: .image(.png, width: 1, height: 1), signatureLength: 8),
        Sample(label: "PNG 640x480", bytes: png(width: 640, height: 480), kind: .image(.png, width: 640, height: 480), signatureLength: 8),
        Sample(label: "JPEG", bytes: jpeg(width: 300, height: 200), kind: .image(.jpeg, width: 300, height: 200), signatureLength: 3),
        Sample(label: "GIF", bytes: gif(width: 3, height: 2), kind: .image(.gif, width: 3, height: 2), signatureLength: 6),
        Sample(label: "WebP lossy", bytes: webpLossy(width: 400, height: 301), kind: .image(.webp, width: 400, height: 301), signatureLength: 12),
        Sample(label: "WebP lossless", bytes: webpLossless(width: 16384, height: 7), kind: .image(.webp, width: 16384, height: 7), signatureLength: 12),
        Sample(label: "WebP extended", bytes: webpExtended(width: 5000, height: 3000), kind: .image(.webp, width: 5000, height: 3000), signatureLength: 12),
        Sample(label: "PDF", bytes: pdf, kind: .pdf, signatureLength: 5, slack: 1),
    ]
}

/// A real 1x1 RGBA PNG: signature, IHDR, IDAT, IEND.
private let pngPixel = hex("89504E470D0A1A0A 0000000D 49484452 00000001 00000001 0806000000 1F15C489",
                           "0000000A 49444154 789C6300010000050001 0D0A2DB4 00000000 49454E44 AE426082")

private func hex(_ parts: String...) -> [UInt8] {
    let digits = Array(parts.joined().filter(\.isHexDigit))
    return stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(digits[$0...$0 + 1]), radix: 16) }
}

private func be32(_ value: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) } }
private func le(_ value: Int, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
private func be16(_ value: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)] }

/// The 1x1 PNG with its IHDR saying another size (CRC recomputed).
private func png(width: UInt32, height: UInt32) -> [UInt8] {
    var bytes = pngPixel
    bytes.replaceSubrange(16..<24, with: be32(width) + be32(height))
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes[12..<29] {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    bytes.replaceSubrange(29..<33, with: be32(~crc))
    return bytes
}

private let jfifAPP0: [UInt8] = [0xFF, 0xE0, 0x00, 0x10] + Array("JFIF".utf8) + [0, 1, 1, 0, 0, 1, 0, 1, 0, 0]

/// SOI, APP0 (JFIF), `middle`, a baseline SOF0 (one component), EOI.
private func jpeg(width: Int, height: Int, frame: UInt8 = 0xC0, middle: [UInt8] = []) -> [UInt8] {
    [0xFF, 0xD8] + jfifAPP0 + middle + [0xFF, frame, 0x00, 0x0B, 0x08] + be16(height) + be16(width) + [0x01, 0x01, 0x11, 0x00, 0xFF, 0xD9]
}

/// APP1 segments of exactly `total` bytes (at most 65537 each: FF E1 and a 65535 length).
private func app1Segments(total: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    var remaining = total
    while remaining > 0 {
        var segment = min(remaining, 65537)
        if (1..<4).contains(remaining - segment) { segment -= 4 }
        bytes += [0xFF, 0xE1] + be16(segment - 2) + [UInt8](repeating: 0x45, count: segment - 4)
        remaining -= segment
    }
    return bytes
}

/// A real 1x1 GIF89a (two-colour table, transparency extension, one image) on a wider screen.
private func gif(width: Int, height: Int) -> [UInt8] {
    Array("GIF89a".utf8) + le(width, 2) + le(height, 2) + hex("800000 FFFFFF 000000 21F90401000000 00",
                                                             "2C 0000 0000 0100 0100 00 02 0244 0100 3B")
}

private func riff(_ chunks: [(String, [UInt8])]) -> [UInt8] {
    var body = Array("WEBP".utf8)
    for (fourCC, data) in chunks {
        body += Array(fourCC.utf8) + le(data.count, 4) + data + (data.count % 2 == 1 ? [0] : [])
    }
    return Array("RIFF".utf8) + le(body.count, 4) + body
}

/// Lossy, with the scale bits set (they are not part of the size).
private func webpLossy(width: Int, height: Int) -> [UInt8] {
    riff([("VP8 ", [0x50, 0x02, 0x00, 0x9D, 0x01, 0x2A] + le(width | 0x4000, 2) + le(height | 0x8000, 2) + [UInt8](repeating: 0x11, count: 8))])
}
private func webpLossless(width: Int, height: Int) -> [UInt8] {
    riff([("VP8L", [0x2F] + le((width - 1) | (height - 1) << 14 | 1 << 28, 4) + [0x07, 0x10, 0x11])])
}
private func webpExtended(width: Int, height: Int) -> [UInt8] {
    riff([("VP8X", [0x10, 0, 0, 0] + le(width - 1, 3) + le(height - 1, 3)), ("VP8L", [0x2F, 0, 0, 0, 0, 0x07])])
}

private let pdf = Array(("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    + "trailer << /Root 1 0 R >>\n%%EOF\n").utf8)

/// A deterministic generator, so a failing fuzz case can be replayed.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        let z = (state ^ (state >> 30)) &* 0xBF58_476D_1CE4_E5B9, y = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return y ^ (y >> 31)
    }
}

private enum Feeding { case whole, byteByByte, byteBuffers(Int), nonContiguous, random(UInt64) }

/// Feeds `bytes` to a fresh inspector the way `feeding` says, and finishes it.
private func inspect(_ bytes: [UInt8], name: String = "upload", _ feeding: Feeding = .whole) -> Result<FileKind, FileRefusal> {
    var inspector = FileInspector()
    switch feeding {
    case .whole: inspector.feed(bytes)
    case .byteByByte: for byte in bytes { inspector.feed(CollectionOfOne(byte)) }
    case .nonContiguous: inspector.feed(bytes.lazy.map { $0 })
    case .byteBuffers(let size):
        for start in stride(from: 0, to: bytes.count, by: size) { inspector.feed(ByteBuffer(bytes: bytes[start..<min(start + size, bytes.count)])) }
    case .random(let seed):
        var random = SplitMix64(state: seed)
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + Int.random(in: 0...70, using: &random))
            inspector.feed(bytes[start..<end])
            start = end
        }
    }
    #expect(inspector.size == bytes.count)
    do { return .success(try inspector.finish(name: name)) } catch { return .failure(error) }
}

private let unsupported = Result<FileKind, FileRefusal>.failure(.unsupported(FileRefusal.unsupportedMessage))

private func isDamaged(_ result: Result<FileKind, FileRefusal>) -> Bool { if case .failure(.damaged) = result { true } else { false } }

@Suite struct FileInspectorTests {
    @Test(arguments: Sample.all)
    private func recognisesSample(_ sample: Sample) {
        #expect(inspect(sample.bytes) == .success(sample.kind))
        #expect(inspect(sample.bytes, name: "notes.md") == .success(sample.kind), "the name never overrides the bytes")
        #expect(inspect(sample.bytes, .byteByByte) == .success(sample.kind))
        #expect(inspect(sample.bytes, .nonContiguous) == .success(sample.kind))
        #expect(inspect(sample.bytes, .byteBuffers(5)) == .success(sample.kind))
        for seed in 1...20 as ClosedRange<UInt64> {
            #expect(inspect(sample.bytes, .random(seed)) == .success(sample.kind))
        }
    }

    @Test(arguments: Sample.all)
    private func truncatedSampleIsDamaged(_ sample: Sample) {
        for length in sample.signatureLength..<(sample.bytes.count - sample.slack) {
            let result = inspect(Array(sample.bytes.prefix(length)))
            #expect(isDamaged(result), "\(length) of \(sample.bytes.count) bytes: \(result)")
        }
    }

    @Test func mediaTypes() {
        #expect(FileKind.image(.png, width: 1, height: 1).mediaType == "image/png" && ImageFormat.webp.mediaType == "image/webp")
        #expect(ImageFormat.jpeg.mediaType == "image/jpeg" && ImageFormat.gif.mediaType == "image/gif")
        #expect(FileKind.pdf.mediaType == "application/pdf")
        let text = Array("# Title\n\nHello, world.\n".utf8)
        let expected = ["notes.md": "text/markdown", "README.markdown": "text/markdown", "a.CSV": "text/csv",
                        "x.json": "application/json", "x.html": "text/plain", "x.svg": "text/plain",
                        "noextension": "text/plain", ".md": "text/plain", "archive.md.txt": "text/plain"]
        for (name, mediaType) in expected {
            #expect(inspect(text, name: name) == .success(.text(mediaType: mediaType)), "\(name)")
        }
    }

    @Test func markupIsTextNeverAnImage() {
        let svg = #"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>"#
        #expect(inspect(Array(svg.utf8), name: "logo.svg") == .success(.text(mediaType: "text/plain")))
        #expect(inspect(Array("<!doctype html><p>hi</p>\r\n".utf8), name: "x.html") == .success(.text(mediaType: "text/plain")))
    }

    @Test func emptyFile() {
        #expect(inspect([]) == .failure(.empty))
        #expect(inspect([], .random(3)) == .failure(.empty))
        var inspector = FileInspector()
        inspector.feed([UInt8]())
        inspector.feed(ByteBuffer())
        #expect(throws: FileRefusal.empty) { try inspector.finish(name: "a.txt") }
    }

    @Test func utf8SplitAcrossChunks() {
        let text = Array("\u{FEFF}héllo wörld, 日本語, 🎉\tcol\r\n\u{0C}del:\u{7F} end\n".utf8)
        for feeding in [Feeding.whole, .byteByByte, .byteBuffers(3), .random(7), .random(8)] {
            #expect(inspect(text, name: "a.txt", feeding) == .success(.text(mediaType: "text/plain")))
        }
    }

    @Test(arguments: [
        [0xFF], [0x80], [0x61, 0x00, 0x62], [0x1B, 0x5B, 0x31, 0x6D], [0x01], [0x0B],
        [0xC0, 0xAF], [0xC1, 0xBF], [0xE0, 0x80, 0xAF], [0xF0, 0x8F, 0xBF, 0xBF], // overlong
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], // surrogates
        [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], // above U+10FFFF
        [0x61, 0x62, 0xE6, 0x97], [0xF0, 0x9F, 0x8E], [0xC3], // cut off at the end
        [0xE6, 0x41, 0x97], // interrupted
        Array("PK\u{03}\u{04}".utf8) + [0x14, 0x00], Array("RIFF".utf8) + [0x24, 0, 0, 0] + Array("WAVEfmt ".utf8),
    ] as [[UInt8]])
    func invalidTextIsUnsupported(_ bytes: [UInt8]) {
        #expect(inspect(bytes) == unsupported)
        #expect(inspect(bytes, .byteByByte) == unsupported)
    }

    @Test func signatureNeverFallsThroughToText() {
        for text in ["%PDF-1.7 but nothing else", "GIF89a is a format", "RIFF1234WEBP and some text"] {
            #expect(isDamaged(inspect(Array(text.utf8), name: "a.txt")), "\(text)")
        }
        #expect(inspect(Array("%PDF is a format\n".utf8)) == .success(.text(mediaType: "text/plain")))
    }

    @Test func damagedHeaders() {
        #expect(isDamaged(inspect(png(width: 0, height: 5))))
        #expect(isDamaged(inspect(png(width: 0x8000_0000, height: 5))))
        #expect(isDamaged(inspect(Array(pngPixel.prefix(8) + pngPixel.suffix(12)))), "no IHDR")
        #expect(isDamaged(inspect(gif(width: 0, height: 0))))
        #expect(isDamaged(inspect(webpLossy(width: 0, height: 3))))
        #expect(isDamaged(inspect(riff([("VP8 ", [0x50, 0x02, 0x00, 0x9D, 0x01, 0x2B, 1, 0, 1, 0])]))), "bad start code")
        #expect(isDamaged(inspect(riff([("VP8L", [0x2E, 0, 0, 0, 0])]))), "bad lossless signature")
        #expect(isDamaged(inspect(Array("RIFF".utf8) + le(4, 4) + webpLossless(width: 2, height: 2)[8...])), "first chunk outside the RIFF")
        #expect(isDamaged(inspect(riff([("ALPH", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])]))), "unknown first chunk")
        #expect(isDamaged(inspect([0xFF, 0xD8, 0xFF, 0xD9])), "EOI before any frame")
        #expect(isDamaged(inspect([0xFF, 0xD8] + jfifAPP0 + [0xFF, 0xDA, 0x00, 0x08] + [UInt8](repeating: 1, count: 6) + [0xFF, 0xD9])), "scan before frame")
        #expect(isDamaged(inspect(jpeg(width: 0, height: 8))))
        #expect(isDamaged(inspect(jpeg(width: 8, height: 8, middle: [0x12, 0x34]))), "garbage between segments")
    }

    @Test func jpegSkipsTablesStandaloneMarkersAndFillBytes() {
        // DHT (C4), JPG (C8) and DAC (CC) look like frame markers but are not; RST0 and TEM stand alone.
        let tables: [UInt8] = [0xFF, 0xC4, 0x00, 0x04, 0xAA, 0xBB, 0xFF, 0xC8, 0x00, 0x02, 0xFF, 0xCC, 0x00, 0x03, 0x01,
                               0xFF, 0xD0, 0xFF, 0x01, 0xFF, 0xFF, 0xFF]
        #expect(inspect(jpeg(width: 1920, height: 1080, frame: 0xC2, middle: tables)) == .success(.image(.jpeg, width: 1920, height: 1080)))
        for frame: UInt8 in [0xC1, 0xC3, 0xC5, 0xC7, 0xC9, 0xCB, 0xCD, 0xCF] {
            #expect(inspect(jpeg(width: 9, height: 4, frame: frame)) == .success(.image(.jpeg, width: 9, height: 4)))
        }
        // EOI need only be within the last 32 bytes (some cameras pad after it).
        #expect(inspect(jpeg(width: 2, height: 3) + [UInt8](repeating: 0, count: 30)) == .success(.image(.jpeg, width: 2, height: 3)))
        #expect(isDamaged(inspect(jpeg(width: 2, height: 3) + [UInt8](repeating: 0, count: 31))))
    }

    /// A JPEG whose APP1 (EXIF, thumbnails) segments push the frame header towards the end of the head.
    @Test(arguments: [(-100, true), (-9, true), (-8, false), (-4, false), (10, false), (200_000, false)])
    func largeJPEGReadsFrameOnlyWithinHead(offset: Int, readable: Bool) {
        let frameAt = FileInspector.headLimit + offset
        var bytes = jpeg(width: 4000, height: 3000, middle: app1Segments(total: frameAt - 2 - jfifAPP0.count))
        bytes.insert(contentsOf: [UInt8](repeating: 0x5A, count: 300_000), at: bytes.count - 2) // scan data before EOI
        #expect(bytes.count > FileInspector.headLimit && bytes[frameAt] == 0xFF && bytes[frameAt + 1] == 0xC0)
        let expected: Result<FileKind, FileRefusal> = readable ? .success(.image(.jpeg, width: 4000, height: 3000))
            : .failure(.damaged("The JPEG image header is unreadable."))
        #expect(inspect(bytes, .byteBuffers(65000)) == expected)
    }

    @Test func largeFilesUseTheirTail() {
        let line = Array("0123456789 ünïcödé 😀 abcdefghijklmnopqrstuvwxyz\n".utf8)
        let body = Array([[UInt8]](repeating: line, count: 40_000).joined())
        #expect(inspect(body, name: "log.csv", .byteBuffers(1000)) == .success(.text(mediaType: "text/csv")))
        let document = Array("%PDF-1.7\n".utf8) + body + Array("%%EOF\n".utf8)
        #expect(inspect(document, .byteBuffers(4093)) == .success(.pdf))
        let updated = Array("%PDF-1.7\n%%EOF\n".utf8) + body
        #expect(inspect(updated, .byteBuffers(4093)) == .failure(.damaged("The PDF document is truncated.")))
    }

    @Test func fuzzRandomBytes() {
        var random = SplitMix64(state: 42)
        let prefixes: [[UInt8]] = [[], [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], [0xFF, 0xD8, 0xFF],
                                   Array("GIF89a".utf8), Array("RIFF".utf8), Array("%PDF-".utf8), [0xEF, 0xBB, 0xBF]]
        for round in 0..<3000 {
            var bytes = prefixes[round % prefixes.count]
            if round % 7 == 4 { bytes += le(Int.random(in: 0...60, using: &random), 4) + Array("WEBPVP8".utf8) }
            let alphabet: [UInt8] = round % 3 == 0 ? [0x00, 0xFF, 0xD9, 0xC0, 0x2F, 0x3B, 0x41, 0xE0, 0x9D] : Array(0...255)
            for _ in 0..<Int.random(in: 0...300, using: &random) {
                bytes.append(alphabet.randomElement(using: &random) ?? 0)
            }
            #expect(inspect(bytes) == inspect(bytes, .random(UInt64(round))), "\(bytes)")
        }
    }

    @Test func fuzzMutatedSamples() {
        var random = SplitMix64(state: 7)
        for round in 0..<3000 {
            var bytes = Sample.all[round % Sample.all.count].bytes
            for _ in 0..<Int.random(in: 1...4, using: &random) where !bytes.isEmpty {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes.removeSubrange(index...)
                case 2: bytes.insert(contentsOf: [UInt8](repeating: .random(in: 0...255, using: &random), count: Int.random(in: 1...9, using: &random)), at: index)
                default: bytes[index] ^= 0x80
                }
            }
            #expect(inspect(bytes) == inspect(bytes, .random(UInt64(round))), "\(bytes)")
        }
    }
}
