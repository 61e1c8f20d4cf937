import Foundation
import NIOConcurrencyHelpers
import Vapor

/// The chat feature's work between requests: keep-alives and token expiry for open streams,
/// checkpoints and recovery for replies while serving; and an orderly stop — replies get their
/// drain time, streams are told to reconnect, the provider's connections close.
final class ChatBackgroundWork: LifecycleHandler, Sendable {
    let hub: ChatStreamHub
    let runner: ReplyRunner
    let catalog: ModelCatalog
    let settings: ChatSettings
    let clock: any WallClock
    private let loops = NIOLockedValueBox<[Task<Void, Never>]>([])

    init(hub: ChatStreamHub, runner: ReplyRunner, catalog: ModelCatalog, settings: ChatSettings, clock: any WallClock) {
        self.hub = hub
        self.runner = runner
        self.catalog = catalog
        self.settings = settings
        self.clock = clock
    }

    /// Recovers replies a previous run left streaming, then starts the periodic work.
    func start() async {
        await runner.recoverInterruptedReplies()
        let streamUpkeep = Task { [hub, clock, settings] in
            let tick = min(settings.keepAliveInterval, 1)
            var sinceKeepAlive: TimeInterval = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int(tick * 1000)))
                sinceKeepAlive += tick
                let keepAliveDue = sinceKeepAlive >= settings.keepAliveInterval
                if keepAliveDue { sinceKeepAlive = 0 }
                hub.tick(now: clock.now(), sendKeepAlive: keepAliveDue)
            }
        }
        let replyUpkeep = Task { [runner, settings] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int(settings.checkpointInterval * 1000)))
                if Task.isCancelled { break }
                await runner.checkpoint()
            }
        }
        loops.withLockedValue { $0 = [streamUpkeep, replyUpkeep] }
    }

    func shutdownAsync(_ application: Application) async {
        await runner.drain(timeout: settings.drainTimeout)
        hub.shutdown()
        loops.withLockedValue { $0 }.forEach { $0.cancel() }
        do {
            try await catalog.provider.shutdown()
        } catch {
            application.logger.warning("the model provider did not shut down cleanly", metadata: ["error": "\(error)"])
        }
    }
}
