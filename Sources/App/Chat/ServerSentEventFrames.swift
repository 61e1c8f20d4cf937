import Foundation
import NIOCore
import Vapor

/// One piece of a chat's event stream, ready to write.
enum StreamFrame: Sendable {
    /// An event that moves the stream to `position`, already encoded as SSE bytes; for a delta,
    /// when its text reached the server (to measure the relay).
    case event(StreamPosition, ByteBuffer, receivedAt: ContinuousClock.Instant? = nil)
    /// A comment that keeps an idle connection open.
    case keepAlive
    /// The stream cannot go on: an `error` event, then the end.
    case end(HTTPProblem)
}

/// Encodes the contract's SSE events. Deltas (the hot path) are written straight into a buffer
/// with a hand-rolled JSON string escape; whole messages go through the JSON encoder.
enum ServerSentEventEncoder {
    static let keepAlive = ByteBuffer(string: ": keep-alive\n\n")
    /// Sent first: how soon EventSource clients should reconnect after a drop.
    static let preamble = ByteBuffer(string: "retry: 2000\n\n")

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(JSONCoding.rfc3339))
        }
        return encoder
    }()

    /// `event: message` or `event: done` with a whole message.
    static func message(_ name: String, _ message: MessageResponse, position: StreamPosition) -> ByteBuffer {
        let json = (try? encoder.encode(message)) ?? Data("{}".utf8)
        var buffer = ByteBufferAllocator().buffer(capacity: json.count + 64)
        write(header: name, id: position, into: &buffer)
        buffer.writeBytes(json)
        buffer.writeStaticString("\n\n")
        return buffer
    }

    /// `event: delta` with `{"message_id": …, "text": …}`.
    static func delta(messageID: String, text: Substring, position: StreamPosition) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: text.utf8.count + 100)
        write(header: "delta", id: position, into: &buffer)
        buffer.writeStaticString(#"{"message_id":""#)
        buffer.writeString(messageID)
        buffer.writeStaticString(#"","text":""#)
        writeEscaped(text.utf8, into: &buffer)
        buffer.writeStaticString("\"}\n\n")
        return buffer
    }

    /// `event: error` with a problem, at `position` (the last one the reader was given).
    static func error(_ problem: HTTPProblem, position: StreamPosition) -> ByteBuffer {
        let body = HTTPProblem.Body(type: problem.type, title: problem.title, status: Int(problem.status.code),
                                    detail: problem.detail, errors: problem.fieldErrors)
        let json = (try? encoder.encode(body)) ?? Data("{}".utf8)
        var buffer = ByteBufferAllocator().buffer(capacity: json.count + 48)
        write(header: "error", id: position, into: &buffer)
        buffer.writeBytes(json)
        buffer.writeStaticString("\n\n")
        return buffer
    }

    private static func write(header event: String, id position: StreamPosition, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("id: ")
        buffer.writeString(position.eventID)
        buffer.writeStaticString("\nevent: ")
        buffer.writeString(event)
        buffer.writeStaticString("\ndata: ")
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Writes `text` as the inside of a JSON string: quotes, backslashes and control characters
    /// escaped, everything else copied in runs.
    static func writeEscaped(_ text: Substring.UTF8View, into buffer: inout ByteBuffer) {
        var runStart = text.startIndex
        var index = runStart
        while index != text.endIndex {
            let byte = text[index]
            if byte >= 0x20, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
                index = text.index(after: index)
                continue
            }
            buffer.writeBytes(text[runStart..<index])
            switch byte {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
            case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
            case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
            default:
                buffer.writeStaticString("\\u00")
                buffer.writeInteger(hexDigits[Int(byte >> 4)])
                buffer.writeInteger(hexDigits[Int(byte & 0x0F)])
            }
            index = text.index(after: index)
            runStart = index
        }
        buffer.writeBytes(text[runStart..<index])
    }
}
