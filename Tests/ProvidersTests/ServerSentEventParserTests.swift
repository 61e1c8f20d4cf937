import Testing
@testable import Providers

@Suite("Server-sent event parser")
struct ServerSentEventParserTests {
    /// A stream as the Messages API sends it (abridged).
    static let recorded = """
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":25,"output_tokens":1}}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data: {"type": "ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" wörld 👋"}}

        event: message_stop
        data: {"type":"message_stop"}


        """

    private func parse(_ chunks: [[UInt8]]) -> [ServerSentEventParser.Event] {
        var parser = ServerSentEventParser()
        var events: [ServerSentEventParser.Event] = []
        for chunk in chunks { parser.feed(chunk) { events.append($0) } }
        return events
    }

    @Test("a recorded stream parses into its events")
    func recordedStream() {
        let events = parse([Array(Self.recorded.utf8)])
        #expect(events.map(\.type) == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "message_stop"])
        #expect(events[4].data == #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" wörld 👋"}}"#)
    }

    @Test("the same events come out wherever the bytes are split")
    func anySplit() {
        let bytes = Array(Self.recorded.utf8)
        let whole = parse([bytes])
        for split in 1..<bytes.count {
            #expect(parse([Array(bytes[..<split]), Array(bytes[split...])]) == whole, "split at \(split)")
        }
        #expect(parse(bytes.map { [$0] }) == whole, "one byte at a time")
    }

    @Test("CRLF and CR line endings, comments, multi-line data, ids and a missing event name")
    func formatDetails() {
        let text = ": keep-alive\r\nid: 7\r\ndata: first\r\ndata: second\r\n\r\nevent: custom\rdata:no space\r\rdata: {}\n\n"
        let events = parse([Array(text.utf8)])
        #expect(events == [
            .init(type: "message", data: "first\nsecond", id: "7"),
            .init(type: "custom", data: "no space", id: "7"),
            .init(type: "message", data: "{}", id: "7"),
        ])
    }

    @Test("an event without its closing blank line is not delivered")
    func incompleteEvent() {
        #expect(parse([Array("event: ping\ndata: {}\n".utf8)]).isEmpty)
        #expect(parse([Array("event: a\n\n".utf8)]).isEmpty, "no data, no event")
    }
}
