import Foundation
import NIOCore
import Vapor

/// Encodes the contract's SSE events, each written straight into a buffer (``JSONWritable``).
enum ServerSentEventEncoder {
    static let keepAlive = ByteBuffer(string: ": keep-alive\n\n")
    /// The last words to a reader too far behind, before the stream closes: a comment (EventSource
    /// ignores it and reconnects with the last event id it had), so that it is told from a drop.
    static let fellBehind = ByteBuffer(string: ": behind: the stream ends here; resume from the last event id\n\n")
    /// Sent first: how soon EventSource clients should reconnect after a drop.
    static let preamble = ByteBuffer(string: "retry: 2000\n\n")

    /// `event: message` or `event: done` with a whole message.
    static func message(_ name: String, _ message: MessageResponse, position: StreamPosition) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: message.content.utf8.count + 400)
        write(header: name, id: position, into: &buffer)
        message.writeJSON(into: &buffer)
        buffer.writeStaticString("\n\n")
        return buffer
    }

    /// `event: delta` (a piece of the answer) or `event: reasoning` (of the reasoning), with
    /// `{"message_id": …, "text": …}`.
    static func delta(_ kind: ReplyDelta.Kind = .answer, messageID: String, text: Substring, position: StreamPosition) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: text.utf8.count + 100)
        write(header: kind == .answer ? "delta" : "reasoning", id: position, into: &buffer)
        buffer.writeStaticString(#"{"message_id":""#)
        buffer.writeString(messageID)
        buffer.writeStaticString(#"","text":""#)
        buffer.writeJSONEscaped(text.utf8)
        buffer.writeStaticString("\"}\n\n")
        return buffer
    }

    /// `event: tool_call` with `{"arguments", "call_id", "message_id", "name"}`.
    static func toolCall(_ call: ToolCallRecord, messageID: String, position: StreamPosition) -> ByteBuffer {
        let arguments = call.arguments.jsonText
        var buffer = ByteBufferAllocator().buffer(capacity: arguments.utf8.count + call.name.utf8.count + 160)
        write(header: "tool_call", id: position, into: &buffer)
        buffer.writeStaticString(#"{"arguments":"#)
        buffer.writeString(arguments)
        buffer.writeStaticString(#","call_id":"#)
        buffer.writeJSONString(call.callID)
        buffer.writeStaticString(#","message_id":""#)
        buffer.writeString(messageID)
        buffer.writeStaticString(#"","name":"#)
        buffer.writeJSONString(call.name)
        buffer.writeStaticString("}\n\n")
        return buffer
    }

    /// `event: tool_result` with `{"call_id", "content", "is_error", "message_id"}`.
    static func toolResult(_ call: ToolCallRecord, messageID: String, position: StreamPosition) -> ByteBuffer {
        let content = call.result ?? ""
        var buffer = ByteBufferAllocator().buffer(capacity: content.utf8.count + 160)
        write(header: "tool_result", id: position, into: &buffer)
        buffer.writeStaticString(#"{"call_id":"#)
        buffer.writeJSONString(call.callID)
        buffer.writeStaticString(#","content":"#)
        buffer.writeJSONString(content)
        buffer.writeStaticString(call.isError ? #","is_error":true"# : #","is_error":false"#)
        buffer.writeStaticString(#","message_id":""#)
        buffer.writeString(messageID)
        buffer.writeStaticString("\"}\n\n")
        return buffer
    }

    /// `event: conversation` with `{"id": chat, "revision": n}`: the current conversation changed;
    /// what follows is the whole of it, at `position` (the start of the new revision).
    static func conversationChanged(chat: UUID, revision: Int, position: StreamPosition) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 120)
        write(header: "conversation", id: position, into: &buffer)
        buffer.writeStaticString(#"{"id":""#)
        buffer.writeString(chat.lowercased)
        buffer.writeStaticString(#"","revision":"#)
        buffer.writeJSONInt(revision)
        buffer.writeStaticString("}\n\n")
        return buffer
    }

    /// `event: chat` with `{"id": chat, "title": …}`, at `position` (the reader's, unchanged).
    static func renamed(chat: UUID, title: String, position: StreamPosition) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: title.utf8.count + 100)
        write(header: "chat", id: position, into: &buffer)
        buffer.writeStaticString(#"{"id":""#)
        buffer.writeString(chat.lowercased)
        buffer.writeStaticString(#"","title":"#)
        buffer.writeJSONString(title)
        buffer.writeStaticString("}\n\n")
        return buffer
    }

    /// `event: error` with a problem, at `position` (the last one the reader was given).
    static func error(_ problem: HTTPProblem, position: StreamPosition) -> ByteBuffer {
        let json = problem.json
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
}
