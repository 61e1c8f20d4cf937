import Foundation
import NIOCore
import Vapor

/// Encodes the contract's SSE events. Deltas (the hot path) are written straight into a buffer
/// with a hand-rolled JSON string escape; whole messages go through the contract's JSON encoder.
enum ServerSentEventEncoder {
    static let keepAlive = ByteBuffer(string: ": keep-alive\n\n")
    /// Sent first: how soon EventSource clients should reconnect after a drop.
    static let preamble = ByteBuffer(string: "retry: 2000\n\n")
    /// What a stream is told when an event for it could not be encoded (it reconnects by id).
    static let unencodable = HTTPProblem(.internalServerError, title: "Event not sent",
                                         detail: "An event of this stream could not be encoded; reconnect with Last-Event-ID.")

    /// `event: message` or `event: done` with a whole message. Throws when the message cannot be
    /// encoded: a stream must end with an error rather than say something else.
    static func message(_ name: String, _ message: MessageResponse, position: StreamPosition) throws -> ByteBuffer {
        let json = try JSONCoding.makeEncoder().encode(message)
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
        // A problem holds only strings and numbers: it always encodes.
        let json = (try? JSONCoding.makeEncoder().encode(body)) ?? Data(#"{"status":500,"title":"Internal Server Error"}"#.utf8)
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
