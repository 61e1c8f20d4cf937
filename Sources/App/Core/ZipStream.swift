import Foundation
import NIOCore

/// Writes a ZIP archive as it goes, entry after entry, never holding more than the piece being
/// written: each entry is stored (not compressed — exports are mostly JSON, Markdown and files
/// already compressed, and storing keeps the server's cost per byte tiny), its CRC-32 and sizes in
/// a data descriptor after its bytes, and the central directory at the end. Names are UTF-8
/// (flag bit 11). Without ZIP64, an archive holds at most 65,535 entries and 4 GiB:
/// ``ZipStreamError/tooLarge`` before a limit would be crossed.
struct ZipStream {
    /// Where the archive's bytes go, in order.
    let output: (ByteBuffer) async throws -> Void
    /// Every entry's time (the archive's, in UTC).
    let modified: Date

    private var offset: UInt64 = 0
    private var central = ByteBuffer()
    private var entries = 0

    static let maxEntries = 65_535
    static let maxSize: UInt64 = 0xFFFF_FFFF

    init(modified: Date, output: @escaping (ByteBuffer) async throws -> Void) {
        self.modified = modified
        self.output = output
    }

    /// An entry of `data`.
    mutating func add(_ name: String, data: ByteBuffer) async throws {
        try await add(name) { write in try await write(data) }
    }

    /// An entry whose bytes `body` hands to the writer it is given, a piece at a time.
    mutating func add(_ name: String, _ body: (_ write: (ByteBuffer) async throws -> Void) async throws -> Void) async throws {
        let nameBytes = Array(name.utf8)
        guard entries < Self.maxEntries, nameBytes.count <= 0xFFFF, offset + 30 + UInt64(nameBytes.count) <= Self.maxSize else {
            throw ZipStreamError.tooLarge
        }
        let headerOffset = UInt32(truncatingIfNeeded: offset)
        let (time, date) = Self.dosTime(modified)
        var header = ByteBuffer()
        header.writeInteger(UInt32(0x0403_4B50), endianness: .little)
        header.writeInteger(UInt16(20), endianness: .little)          // version needed: 2.0
        header.writeInteger(UInt16(0x0808), endianness: .little)      // data descriptor, UTF-8 names
        header.writeInteger(UInt16(0), endianness: .little)           // stored
        header.writeInteger(time, endianness: .little)
        header.writeInteger(date, endianness: .little)
        header.writeInteger(UInt32(0), endianness: .little)           // CRC and sizes: in the descriptor
        header.writeInteger(UInt32(0), endianness: .little)
        header.writeInteger(UInt32(0), endianness: .little)
        header.writeInteger(UInt16(nameBytes.count), endianness: .little)
        header.writeInteger(UInt16(0), endianness: .little)
        header.writeBytes(nameBytes)
        try await emit(header)

        var crc = CRC32()
        var size: UInt64 = 0
        try await body { piece in
            crc.update(piece.readableBytesView)
            size += UInt64(piece.readableBytes)
            guard offset + UInt64(piece.readableBytes) + 16 <= Self.maxSize else { throw ZipStreamError.tooLarge }
            try await emit(piece)
        }
        var descriptor = ByteBuffer()
        descriptor.writeInteger(UInt32(0x0807_4B50), endianness: .little)
        descriptor.writeInteger(crc.value, endianness: .little)
        descriptor.writeInteger(UInt32(size), endianness: .little)
        descriptor.writeInteger(UInt32(size), endianness: .little)
        try await emit(descriptor)

        central.writeInteger(UInt32(0x0201_4B50), endianness: .little)
        central.writeInteger(UInt16(0x0314), endianness: .little)     // made by: Unix, 2.0
        central.writeInteger(UInt16(20), endianness: .little)
        central.writeInteger(UInt16(0x0808), endianness: .little)
        central.writeInteger(UInt16(0), endianness: .little)
        central.writeInteger(time, endianness: .little)
        central.writeInteger(date, endianness: .little)
        central.writeInteger(crc.value, endianness: .little)
        central.writeInteger(UInt32(size), endianness: .little)
        central.writeInteger(UInt32(size), endianness: .little)
        central.writeInteger(UInt16(nameBytes.count), endianness: .little)
        central.writeInteger(UInt16(0), endianness: .little)          // extra
        central.writeInteger(UInt16(0), endianness: .little)          // comment
        central.writeInteger(UInt16(0), endianness: .little)          // disk
        central.writeInteger(UInt16(0), endianness: .little)          // internal attributes
        central.writeInteger(UInt32(0o100644) << 16, endianness: .little) // a regular file, rw-r--r--
        central.writeInteger(headerOffset, endianness: .little)
        central.writeBytes(nameBytes)
        entries += 1
    }

    /// Writes the central directory: the archive is complete.
    mutating func finish() async throws {
        let directoryOffset = offset
        let directorySize = UInt64(central.readableBytes)
        guard directoryOffset + directorySize + 22 <= Self.maxSize else { throw ZipStreamError.tooLarge }
        try await emit(central)
        var end = ByteBuffer()
        end.writeInteger(UInt32(0x0605_4B50), endianness: .little)
        end.writeInteger(UInt16(0), endianness: .little)
        end.writeInteger(UInt16(0), endianness: .little)
        end.writeInteger(UInt16(entries), endianness: .little)
        end.writeInteger(UInt16(entries), endianness: .little)
        end.writeInteger(UInt32(directorySize), endianness: .little)
        end.writeInteger(UInt32(directoryOffset), endianness: .little)
        end.writeInteger(UInt16(0), endianness: .little)
        try await emit(end)
    }

    private mutating func emit(_ buffer: ByteBuffer) async throws {
        offset += UInt64(buffer.readableBytes)
        try await output(buffer)
    }

    /// MS-DOS time and date (two-second resolution, 1980 to 2107), in UTC.
    static func dosTime(_ date: Date) -> (time: UInt16, date: UInt16) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let year = min(max((parts.year ?? 1980) - 1980, 0), 127)
        let time = UInt16((parts.hour ?? 0) << 11 | (parts.minute ?? 0) << 5 | (parts.second ?? 0) / 2)
        let day = UInt16(year << 9 | (parts.month ?? 1) << 5 | (parts.day ?? 1))
        return (time, day)
    }
}

enum ZipStreamError: Error {
    /// More than 65,535 entries or 4 GiB: beyond a ZIP without ZIP64.
    case tooLarge
}

/// CRC-32 (IEEE 802.3, as ZIP uses it), eight bytes at a step ("slicing by 8": eight tables, so
/// that a step costs eight lookups and no dependency chain per byte; about 4× the byte-at-a-time
/// table on this machine).
struct CRC32 {
    private(set) var value: UInt32 = 0

    /// `tables[k][b]`: the CRC of byte `b` followed by `k` zero bytes.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt32(index)
            for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
            tables[index] = crc
        }
        for index in 0..<256 {
            for k in 1..<8 {
                let previous = tables[(k - 1) * 256 + index]
                tables[k * 256 + index] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    mutating func update(_ bytes: some Sequence<UInt8>) {
        var crc = ~value
        Self.tables.withUnsafeBufferPointer { t in
            let done = bytes.withContiguousStorageIfAvailable { buffer -> Bool in
                var i = 0
                let count = buffer.count
                while i + 8 <= count {
                    let low = crc ^ (UInt32(buffer[i]) | UInt32(buffer[i + 1]) << 8 | UInt32(buffer[i + 2]) << 16 | UInt32(buffer[i + 3]) << 24)
                    let high = UInt32(buffer[i + 4]) | UInt32(buffer[i + 5]) << 8 | UInt32(buffer[i + 6]) << 16 | UInt32(buffer[i + 7]) << 24
                    crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                        ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                        ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                        ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                    i += 8
                }
                while i < count {
                    crc = t[Int((crc ^ UInt32(buffer[i])) & 0xFF)] ^ (crc >> 8)
                    i += 1
                }
                return true
            }
            if done == nil {
                for byte in bytes { crc = t[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
            }
        }
        value = ~crc
    }
}
