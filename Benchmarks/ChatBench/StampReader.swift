import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The clients' side of the benchmark: one plain TCP connection per event stream, its bytes scanned
/// on the event loop for the stamps the token source wrote (`"text":"t<nanoseconds>;`) and for the
/// reply's end, with no HTTP client, no tasks and no JSON: what a delta costs to read is a socket
/// read and a scan. The same reader reads the server's stream (`event: done` ends a reply) and the
/// token source directly (`message_stop`), the baseline without the server.
enum StampReader {
    /// Opens `GET path` with `token` on `host:port`; returns once the first bytes of the body (the
    /// stream's replay) have arrived.
    static func openStream(group: any EventLoopGroup, port: Int, path: String, token: String,
                           recorder: LatencyRecorder?) async throws -> OpenStream {
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nAccept: text/event-stream\r\n\r\n"
        return try await open(group: group, port: port, request: request, end: "event: done", recorder: recorder)
    }

    /// Streams one reply straight from the token source: what the load generator costs by itself.
    static func direct(group: any EventLoopGroup, port: Int, recorder: LatencyRecorder) async throws -> OpenStream {
        let body = #"{"model":"claude-sonnet-5-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"How fast is this?"}]}"#
        let request = "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nx-api-key: \(TokenSource.apiKey)\r\n"
            + "anthropic-version: 2023-06-01\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        return try await open(group: group, port: port, request: request, end: "event: message_stop", recorder: recorder)
    }

    private static func open(group: any EventLoopGroup, port: Int, request: String, end: String,
                             recorder: LatencyRecorder?) async throws -> OpenStream {
        let done = NIOLockedValueBox<Date?>(nil)
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port).get()
        let opened = channel.eventLoop.makePromise(of: Void.self)
        try await channel.pipeline.addHandler(Handler(end: end, recorder: recorder, done: done, opened: opened)).get()
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        try await opened.futureResult.get()
        return OpenStream(channel: channel, done: done)
    }

    /// Scans a response: status line, headers, then the body for stamps and the end marker. Chunked
    /// framing is left in place: a chunk header never falls inside a stamp (each event is written,
    /// and framed, whole), and a stamp cut between two reads is kept for the next.
    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer

        // Touched on the channel's event loop only.
        private let endMarker: [UInt8]
        private let recorder: LatencyRecorder?
        private let done: NIOLockedValueBox<Date?>
        private var opened: EventLoopPromise<Void>?
        private var inBody = false
        private var carry: [UInt8] = []
        private var latencies: [Int64] = []

        private static let stampMarker = Array(#""text":"t"#.utf8)
        private static let headerEnd = Array("\r\n\r\n".utf8)

        init(end: String, recorder: LatencyRecorder?, done: NIOLockedValueBox<Date?>, opened: EventLoopPromise<Void>) {
            endMarker = Array(end.utf8)
            self.recorder = recorder
            self.done = done
            self.opened = opened
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            var received: Int64 = 0
            if recorder != nil {
                var now = timespec()
                clock_gettime(CLOCK_REALTIME, &now)
                received = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
            }
            carry.append(contentsOf: buffer.readableBytesView)
            buffer.clear()
            let drop = carry.withUnsafeBufferPointer { bytes -> Int in
                var start = 0
                if !inBody {
                    guard let end = find(Self.headerEnd, in: bytes, from: 0) else { return 0 }
                    guard bytes.count >= 12, bytes[9] == UInt8(ascii: "2") else {
                        opened?.fail(BenchError("the stream answered \(String(decoding: bytes.prefix(12), as: UTF8.self))"))
                        opened = nil
                        return 0
                    }
                    inBody = true
                    start = end + Self.headerEnd.count
                }
                var consumed = start
                var index = start
                while let found = find(Self.stampMarker, in: bytes, from: index) {
                    var value: Int64 = 0
                    var digit = found + Self.stampMarker.count
                    while digit < bytes.count, bytes[digit] >= UInt8(ascii: "0"), bytes[digit] <= UInt8(ascii: "9") {
                        value = value * 10 + Int64(bytes[digit] - UInt8(ascii: "0"))
                        digit += 1
                    }
                    guard digit < bytes.count else { break }  // cut between reads: keep it for the next
                    if recorder != nil { latencies.append(received - value) }
                    index = digit
                    consumed = digit
                }
                if find(endMarker, in: bytes, from: start) != nil {
                    done.withLockedValue { if $0 == nil { $0 = Date() } }
                }
                if bytes.count > start {
                    opened?.succeed(())
                    opened = nil
                }
                // Keep only what may hold the beginning of a stamp or of the end marker.
                let keep = max(consumed, bytes.count - max(Self.stampMarker.count + 24, endMarker.count))
                return max(start, min(keep, bytes.count))
            }
            carry.removeFirst(drop)
            if latencies.count >= 256 { flushLatencies() }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            flushLatencies()
        }

        func channelInactive(context: ChannelHandlerContext) {
            flushLatencies()
            opened?.fail(BenchError("the connection closed before the stream began"))
            opened = nil
            done.withLockedValue { if $0 == nil { $0 = Date() } }
        }

        private func flushLatencies() {
            guard !latencies.isEmpty, let recorder else { return }
            recorder.record(latencies)
            latencies.removeAll(keepingCapacity: true)
        }

        private func find(_ needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
            guard let first = needle.first, haystack.count >= needle.count else { return nil }
            var index = from
            while index <= haystack.count - needle.count {
                if haystack[index] == first {
                    var matched = true
                    for offset in 1..<needle.count where haystack[index + offset] != needle[offset] {
                        matched = false
                        break
                    }
                    if matched { return index }
                }
                index += 1
            }
            return nil
        }
    }
}
