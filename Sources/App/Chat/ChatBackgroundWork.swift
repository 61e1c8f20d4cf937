import Foundation
import NIOConcurrencyHelpers
import Vapor

/// The chat feature's work between requests: keep-alives and token expiry for open streams,
/// checkpoints and recovery for replies while serving; and an orderly stop — replies get their
/// drain time, streams are told to reconnect, the upkeep loops end (awaited, so that none is
/// writing when the database closes), the provider's connections close.
final class ChatBackgroundWork: LifecycleHandler, Sendable {
    let bus: any ChatEventBus
    let runner: ReplyRunner
    let catalog: ModelCatalog
    let tools: ToolCatalog
    let settings: ChatSettings
    let clock: any WallClock
    /// Reads that follow account changes (``StreamSignOuts``).
    let accountWork: OwnedTasks
    /// Deletes files attached to nothing for a day.
    let fileSweep: FileSweep
    private let loops = NIOLockedValueBox<[Task<Void, Never>]>([])
    private let running = NIOLockedValueBox(0)

    /// Upkeep loops that have not ended yet.
    var runningLoops: Int { running.withLockedValue { $0 } }

    init(bus: any ChatEventBus, runner: ReplyRunner, catalog: ModelCatalog, tools: ToolCatalog, settings: ChatSettings, clock: any WallClock,
         accountWork: OwnedTasks, fileSweep: FileSweep) {
        self.tools = tools
        self.accountWork = accountWork
        self.fileSweep = fileSweep
        self.bus = bus
        self.runner = runner
        self.catalog = catalog
        self.settings = settings
        self.clock = clock
    }

    /// Connects the event bus, recovers replies a previous run left streaming, then starts the periodic
    /// work. The providers and their models go to `logger` once first listed, and again when that changes.
    func start(logger: Logger) async {
        await bus.start()
        await runner.recoverInterruptedReplies()
        running.withLockedValue { $0 += tools.isConfigured ? 5 : 4 }
        let streamUpkeep = Task { [bus, clock, settings, running] in
            defer { running.withLockedValue { $0 -= 1 } }
            let tick = min(settings.keepAliveInterval, .seconds(1))
            var sinceKeepAlive = Duration.zero
            while !Task.isCancelled {
                try? await Task.sleep(for: tick)
                sinceKeepAlive += tick
                let keepAliveDue = sinceKeepAlive >= settings.keepAliveInterval
                if keepAliveDue { sinceKeepAlive = .zero }
                bus.tick(now: clock.now(), sendKeepAlive: keepAliveDue)
            }
        }
        let replyUpkeep = Task { [runner, settings, running] in
            defer { running.withLockedValue { $0 -= 1 } }
            while !Task.isCancelled {
                try? await Task.sleep(for: settings.checkpointInterval)
                if Task.isCancelled { break }
                await runner.checkpoint()
                await runner.recoverInterruptedReplies()
            }
        }
        // The providers' models and whether they answer, listed now and again; no request waits for it.
        let modelUpkeep = Task { [catalog, settings = catalog.settings, running] in
            defer { running.withLockedValue { $0 -= 1 } }
            var logged: String?
            while !Task.isCancelled {
                await catalog.refresh(timeout: min(settings.connectTimeout, .seconds(10)))
                let summary = catalog.summary
                if summary != logged {
                    logger.log(level: catalog.standings.allSatisfy(\.standing.available) ? .notice : .warning, "\(summary)")
                    logged = summary
                }
                try? await Task.sleep(for: settings.refreshInterval)
            }
        }
        // Files attached to nothing for their lifetime go (every instance sweeps; a deletion is idempotent).
        let fileUpkeep = Task { [fileSweep, clock, running] in
            defer { running.withLockedValue { $0 -= 1 } }
            while !Task.isCancelled {
                await fileSweep.run(now: clock.now())
                try? await Task.sleep(for: fileSweep.interval)
            }
        }
        // The MCP servers' tools, where any are configured, listed now and again; no request waits for it.
        let toolUpkeep = !tools.isConfigured ? nil : Task { [tools, running] in
            defer { running.withLockedValue { $0 -= 1 } }
            var logged: String?
            while !Task.isCancelled {
                await tools.refresh()
                let summary = tools.summary
                if summary != logged {
                    logger.log(level: tools.standings.allSatisfy(\.standing.available) ? .notice : .warning, "\(summary)")
                    logged = summary
                }
                try? await Task.sleep(for: tools.settings.refreshInterval)
            }
        }
        loops.withLockedValue { $0 = [streamUpkeep, replyUpkeep, modelUpkeep, fileUpkeep] + (toolUpkeep.map { [$0] } ?? []) }
    }

    func shutdownAsync(_ application: Application) async {
        await runner.drain(timeout: settings.drainTimeout)
        await accountWork.close(by: .now)
        await bus.shutdown()
        let loops = self.loops.withLockedValue { $0 }
        loops.forEach { $0.cancel() }
        for loop in loops { await loop.value }
        await tools.shutdown()
        do {
            try await catalog.shutdown()
        } catch {
            application.logger.warning("the model provider did not shut down cleanly", metadata: ["error": "\(error)"])
        }
    }
}
