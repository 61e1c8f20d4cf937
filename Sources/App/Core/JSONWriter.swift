import Foundation
import NIOCore
import Vapor

/// JSON written straight into a `ByteBuffer`, for the responses and stream events that are sent
/// most: no `Codable` containers, no boxed values, no intermediate `Data`. It writes what
/// ``JSONCoding``'s encoder writes for the same value, byte for byte (keys in sorted order, slashes
/// unescaped, times as ``RFC3339``); the tests hold each hand-written shape to it.
protocol JSONWritable {
    func writeJSON(into buffer: inout ByteBuffer)
}

extension JSONWritable {
    /// The value's JSON in a new buffer.
    func jsonBuffer(capacity: Int = 512) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: capacity)
        writeJSON(into: &buffer)
        return buffer
    }
}

/// A response body written as JSON by hand (``JSONWritable``) rather than through `Content`.
protocol JSONResponse: JSONWritable, AsyncResponseEncodable, Sendable {}

extension JSONResponse {
    func encodeResponse(for request: Request) async throws -> Response {
        response(status: .ok, for: request)
    }

    /// The response, with `status`.
    func response(status: HTTPStatus, for request: Request) -> Response {
        var buffer = request.byteBufferAllocator.buffer(capacity: 1024)
        writeJSON(into: &buffer)
        return .json(buffer, status: status)
    }
}

extension Response {
    /// A response whose body is `json`, already written.
    static func json(_ json: ByteBuffer, status: HTTPStatus = .ok) -> Response {
        var headers = HTTPHeaders()
        headers.contentType = .json
        return Response(status: status, headers: headers, body: .init(buffer: json))
    }
}

extension Array: JSONWritable where Element: JSONWritable {
    func writeJSON(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "["))
        for (index, element) in enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            element.writeJSON(into: &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
    }
}

extension ByteBuffer {
    /// `"…"`, escaped as the contract's encoder escapes: quotes, backslashes and control characters.
    mutating func writeJSONString(_ value: String) {
        writeInteger(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { writeJSONEscaped($0) }
        writeInteger(UInt8(ascii: "\""))
    }

    mutating func writeJSONString(_ value: String?) {
        guard let value else {
            writeStaticString("null")
            return
        }
        writeJSONString(value)
    }

    mutating func writeJSONInt(_ value: Int) {
        writeString(String(value))
    }

    /// A time as the contract writes it (``RFC3339``), quoted; `null` without one.
    mutating func writeJSONDate(_ date: Date?) {
        guard let date else {
            writeStaticString("null")
            return
        }
        writeInteger(UInt8(ascii: "\""))
        RFC3339.write(date, into: &self)
        writeInteger(UInt8(ascii: "\""))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The inside of a JSON string: quotes, backslashes and control characters escaped (`\b`, `\f`,
    /// `\n`, `\r`, `\t`, else `\u00XX`), everything else copied in runs.
    mutating func writeJSONEscaped(_ text: Substring.UTF8View) {
        if let done: Void = text.withContiguousStorageIfAvailable({ writeJSONEscaped($0) }) { return done }
        writeJSONEscaped(UnsafeBufferPointer?.none, slow: text)
    }

    mutating func writeJSONEscaped(_ text: UnsafeBufferPointer<UInt8>) {
        var runStart = 0
        for index in 0..<text.count {
            let byte = text[index]
            if byte >= 0x20, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") { continue }
            writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: text[runStart..<index])))
            writeEscape(byte)
            runStart = index + 1
        }
        writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: text[runStart...])))
    }

    private mutating func writeEscape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): writeStaticString("\\\"")
        case UInt8(ascii: "\\"): writeStaticString("\\\\")
        case UInt8(ascii: "\n"): writeStaticString("\\n")
        case UInt8(ascii: "\r"): writeStaticString("\\r")
        case UInt8(ascii: "\t"): writeStaticString("\\t")
        case 0x08: writeStaticString("\\b")
        case 0x0C: writeStaticString("\\f")
        default:
            writeStaticString("\\u00")
            writeInteger(Self.hexDigits[Int(byte >> 4)])
            writeInteger(Self.hexDigits[Int(byte & 0x0F)])
        }
    }

    /// The same, for text that is not stored contiguously (bridged strings).
    private mutating func writeJSONEscaped(_ unused: UnsafeBufferPointer<UInt8>?, slow text: Substring.UTF8View) {
        var runStart = text.startIndex
        var index = runStart
        while index != text.endIndex {
            let byte = text[index]
            if byte >= 0x20, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
                index = text.index(after: index)
                continue
            }
            writeBytes(text[runStart..<index])
            writeEscape(byte)
            index = text.index(after: index)
            runStart = index
        }
        writeBytes(text[runStart..<index])
    }
}

/// The contract's time format, `2026-11-25T09:30:00.123Z`: UTC, milliseconds (truncated), `Z`.
/// Written by hand (a civil-from-days conversion), so that formatting a time costs no calendar,
/// no locale and no allocation; the JSON encoder uses it too, so every time reads the same.
enum RFC3339 {
    static func string(_ date: Date) -> String {
        var buffer = ByteBufferAllocator().buffer(capacity: 24)
        write(date, into: &buffer)
        return String(buffer: buffer)
    }

    static func write(_ date: Date, into buffer: inout ByteBuffer) {
        // To the microsecond first (what a Double holds of a stored time, without its binary
        // noise: 0.607 s is 0.60699999… s), then down to the millisecond.
        let microseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let milliseconds = microseconds >= 0 ? microseconds / 1000 : (microseconds - 999) / 1000
        let (days, millisecondOfDay) = milliseconds.quotientAndRemainder(dividingBy: 86_400_000)
        // Floor division for times before 1970.
        let day = millisecondOfDay < 0 ? days - 1 : days
        let inDay = Int(millisecondOfDay < 0 ? millisecondOfDay + 86_400_000 : millisecondOfDay)
        let (year, month, dayOfMonth) = civil(fromDays: day)
        let seconds = inDay / 1000
        let fraction = inDay % 1000
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { out in
            func put(_ value: Int, at offset: Int, digits: Int) {
                var rest = value
                for position in stride(from: offset + digits - 1, through: offset, by: -1) {
                    out[position] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                    rest /= 10
                }
            }
            put(Int(year), at: 0, digits: 4)
            out[4] = UInt8(ascii: "-")
            put(Int(month), at: 5, digits: 2)
            out[7] = UInt8(ascii: "-")
            put(Int(dayOfMonth), at: 8, digits: 2)
            out[10] = UInt8(ascii: "T")
            put(seconds / 3600, at: 11, digits: 2)
            out[13] = UInt8(ascii: ":")
            put(seconds / 60 % 60, at: 14, digits: 2)
            out[16] = UInt8(ascii: ":")
            put(seconds % 60, at: 17, digits: 2)
            out[19] = UInt8(ascii: ".")
            put(fraction, at: 20, digits: 3)
            out[23] = UInt8(ascii: "Z")
            buffer.writeBytes(UnsafeRawBufferPointer(out))
        }
    }

    /// Year, month and day of the proleptic Gregorian calendar, `days` after 1970-01-01
    /// (Howard Hinnant's `civil_from_days`).
    private static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
