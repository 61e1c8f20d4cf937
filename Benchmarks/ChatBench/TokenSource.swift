import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The model's side of the benchmark: a bare SwiftNIO server that answers `POST /v1/messages` as
/// the Anthropic Messages API streams (`message_start`, one `content_block_delta` per token,
/// `message_delta` with usage, `message_stop`), each token's text the wall-clock time it was
/// sent (`t<nanoseconds>;`). It does nothing else, in as few instructions as NIO allows, so that the
/// load generator costs far less than the server it measures (`--cost` reports what it costs).
///
/// Timings: `spread`, each reply's tokens `delay` apart, the first at a random point of the first
/// interval (so that replies started together send evenly over time); `locked`, every reply's
/// tokens on one shared beat of `delay`, so that all replies running at once send a token at the
/// same instant.
final class TokenSource: Sendable {
    struct Script: Sendable {
        var tokens: Int
        var delay: TimeAmount
        var locked: Bool
    }

    let port: Int
    private let channel: any Channel
    private let script: NIOLockedValueBox<Script>
    /// What was posted to `/v1/traces` (`--otel`): requests and bytes.
    let traces: NIOLockedValueBox<(posts: Int, bytes: Int)>
    static let apiKey = "sk-ant-bench"

    var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(channel: any Channel, script: NIOLockedValueBox<Script>, traces: NIOLockedValueBox<(posts: Int, bytes: Int)>) {
        self.channel = channel
        self.script = script
        self.traces = traces
        port = channel.localAddress?.port ?? 0
    }

    static func start(group: any EventLoopGroup, script: Script) async throws -> TokenSource {
        let box = NIOLockedValueBox(script)
        let traces = NIOLockedValueBox((posts: 0, bytes: 0))
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                    try channel.pipeline.syncOperations.addHandler(ReplyHandler(script: box, traces: traces))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TokenSource(channel: channel, script: box, traces: traces)
    }

    func set(_ script: Script) { self.script.withLockedValue { $0 = script } }

    func shutdown() async { try? await channel.close() }

    /// The next instant that is a whole number of `period`s since the process's clock origin.
    static func nextBeat(_ period: TimeAmount) -> NIODeadline {
        let now = NIODeadline.now().uptimeNanoseconds
        let step = UInt64(period.nanoseconds)
        return .uptimeNanoseconds((now / step + 1) * step)
    }
}

/// One connection: each request gets a streamed reply, its tokens sent by scheduled tasks on the
/// connection's event loop; a post to `/v1/traces` is counted and answered as a collector does.
private final class ReplyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    // Touched on the channel's event loop only.
    private let script: NIOLockedValueBox<TokenSource.Script>
    private let traces: NIOLockedValueBox<(posts: Int, bytes: Int)>
    private var isReplying = false
    private var traceBytes: Int?

    init(script: NIOLockedValueBox<TokenSource.Script>, traces: NIOLockedValueBox<(posts: Int, bytes: Int)>) {
        self.script = script
        self.traces = traces
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            traceBytes = head.uri.hasPrefix("/v1/traces") ? 0 : nil
            return
        case .body(let bytes):
            traceBytes? += bytes.readableBytes
            return
        case .end:
            if let bytes = traceBytes {
                traces.withLockedValue { $0 = ($0.posts + 1, $0.bytes + bytes) }
                var head = HTTPResponseHead(version: .http1_1, status: .ok)
                head.headers.add(name: "content-type", value: "application/x-protobuf")
                head.headers.add(name: "content-length", value: "0")
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                traceBytes = nil
                return
            }
        }
        guard !isReplying else { return }
        isReplying = true
        let script = self.script.withLockedValue { $0 }
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "content-type", value: "text/event-stream")
        head.headers.add(name: "transfer-encoding", value: "chunked")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        write(context, "message_start", #"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","content":[],"model":"claude-sonnet-5-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_read_input_tokens":0,"cache_creation_input_tokens":0,"output_tokens":1}}}"#)
        write(context, "content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#)
        context.flush()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        sendToken(0, of: script, loopBound)
    }

    private func sendToken(_ number: Int, of script: TokenSource.Script, _ bound: NIOLoopBound<(ReplyHandler, ChannelHandlerContext)>) {
        let (_, context) = bound.value
        guard number < script.tokens else {
            write(context, "content_block_stop", #"{"type":"content_block_stop","index":0}"#)
            write(context, "message_delta", #"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":\#(script.tokens)}}"#)
            write(context, "message_stop", #"{"type":"message_stop"}"#)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            isReplying = false
            return
        }
        let send = {
            let (handler, context) = bound.value
            guard context.channel.isActive else { return }
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let stamp = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
            handler.write(context, "content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"t\#(stamp);"}}"#)
            context.flush()
            handler.sendToken(number + 1, of: script, bound)
        }
        if script.locked {
            context.eventLoop.scheduleTask(deadline: TokenSource.nextBeat(script.delay), send)
        } else if script.delay.nanoseconds > 0 {
            // The first token at a random point of the first interval: replies started together
            // still send their tokens spread evenly over time.
            let wait = number > 0 ? script.delay : .nanoseconds(Int64.random(in: 0..<script.delay.nanoseconds))
            context.eventLoop.scheduleTask(in: wait, send)
        } else {
            context.eventLoop.execute(send)
        }
    }

    private func write(_ context: ChannelHandlerContext, _ event: String, _ data: String) {
        var buffer = context.channel.allocator.buffer(capacity: event.utf8.count + data.utf8.count + 16)
        buffer.writeStaticString("event: ")
        buffer.writeString(event)
        buffer.writeStaticString("\ndata: ")
        buffer.writeString(data)
        buffer.writeStaticString("\n\n")
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        isReplying = false
        context.fireChannelInactive()
    }
}
