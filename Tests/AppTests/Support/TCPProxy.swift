import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP proxy on loopback in front of a server (PostgreSQL): it can cut every connection through
/// it at once, and refuse new ones until told to let them through again — a network failure, or a
/// database that went away, on demand — or stall them: a network cut no packet reports, where
/// what is sent is lost and nothing closes.
final class TCPProxy: Sendable {
    let port: Int
    private let server: any Channel
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var refusing = false
        /// One flag per connection through, set when it is stalled.
        var links: [NIOLockedValueBox<Bool>] = []
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
                        let stalled = NIOLockedValueBox(false)
                        proxy.track(inbound, outbound)
                        proxy.state.withLockedValue { $0.links.append(stalled) }
                        return inbound.pipeline.addHandler(Relay(peer: outbound, stalled: stalled)).flatMap {
                            outbound.pipeline.addHandler(Relay(peer: inbound, stalled: stalled))
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

    /// Closes every connection through the proxy, and returns once they are closed (nothing sent
    /// after it can still slip through one); with `refuse`, new ones too until ``restore()``.
    func drop(refuse: Bool = false) async {
        let channels = state.withLockedValue { state in
            state.refusing = refuse
            defer { state.channels = [:] }
            return Array(state.channels.values)
        }
        for channel in channels { try? await channel.close() }
        for channel in channels { try? await channel.closeFuture.get() }
    }

    /// Stalls every connection through the proxy now: from here on what either side sends is lost,
    /// and neither is closed. New connections go through.
    func stall() {
        let links = state.withLockedValue { state in
            defer { state.links = [] }
            return state.links
        }
        links.forEach { $0.withLockedValue { $0 = true } }
    }

    /// Lets new connections through again.
    func restore() {
        state.withLockedValue { $0.refusing = false }
    }

    func shutdown() async {
        await drop(refuse: true)
        try? await server.close()
    }

    /// Copies what one side reads to the other, and closes the other when one closes.
    private final class Relay: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        private let peer: any Channel
        private let stalled: NIOLockedValueBox<Bool>

        init(peer: any Channel, stalled: NIOLockedValueBox<Bool>) {
            self.peer = peer
            self.stalled = stalled
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !stalled.withLockedValue({ $0 }) else { return }
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
