import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP proxy on loopback in front of a server (PostgreSQL): it can cut every connection through
/// it at once, and refuse new ones until told to let them through again — a network failure, or a
/// database that went away, on demand.
final class TCPProxy: Sendable {
    let port: Int
    private let server: any Channel
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var refusing = false
    }

    static func start(to host: String, port targetPort: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> TCPProxy {
        let box = NIOLockedValueBox<TCPProxy?>(nil)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                guard let proxy = box.withLockedValue({ $0 }), !proxy.state.withLockedValue({ $0.refusing }) else {
                    return inbound.close()
                }
                return ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: host, port: targetPort)
                    .flatMap { outbound in
                        proxy.track(inbound, outbound)
                        return inbound.pipeline.addHandler(Relay(peer: outbound)).flatMap {
                            outbound.pipeline.addHandler(Relay(peer: inbound))
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let proxy = TCPProxy(port: server.localAddress?.port ?? 0, server: server, group: group)
        box.withLockedValue { $0 = proxy }
        return proxy
    }

    private init(port: Int, server: any Channel, group: any EventLoopGroup) {
        self.port = port
        self.server = server
        self.group = group
    }

    private func track(_ channels: any Channel...) {
        state.withLockedValue { state in
            for channel in channels { state.channels[ObjectIdentifier(channel)] = channel }
        }
        for channel in channels {
            channel.closeFuture.whenComplete { [state] _ in
                state.withLockedValue { _ = $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
            }
        }
    }

    /// Closes every connection through the proxy; with `refuse`, new ones too until ``restore()``.
    func drop(refuse: Bool = false) {
        let channels = state.withLockedValue { state in
            state.refusing = refuse
            defer { state.channels = [:] }
            return Array(state.channels.values)
        }
        channels.forEach { $0.close(promise: nil) }
    }

    /// Lets new connections through again.
    func restore() {
        state.withLockedValue { $0.refusing = false }
    }

    func shutdown() async {
        drop(refuse: true)
        try? await server.close()
    }

    /// Copies what one side reads to the other, and closes the other when one closes.
    private final class Relay: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        private let peer: any Channel

        init(peer: any Channel) { self.peer = peer }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            peer.writeAndFlush(unwrapInboundIn(data), promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            peer.close(promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
