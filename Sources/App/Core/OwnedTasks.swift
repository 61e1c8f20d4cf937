import NIOConcurrencyHelpers
import Vapor

/// Work that outlives the request or event that started it (naming a chat after its reply, reading
/// what another instance announced): each piece in a task of its own, owned here so that shutdown
/// ends it before the database closes. Nothing new starts once shutdown has begun.
final class OwnedTasks: Sendable {
    private struct State {
        var tasks: [Int: Task<Void, Never>] = [:]
        var nextID = 0
        var isClosed = false
    }

    private let state = NIOLockedValueBox(State())

    /// Runs `work` in a task of its own, unless shutdown has begun; whether it does.
    @discardableResult
    func run(_ work: @escaping @Sendable () async -> Void) -> Bool {
        state.withLockedValue { state in
            guard !state.isClosed else { return false }
            let id = state.nextID
            state.nextID += 1
            // The task removes itself under the same lock, so never before it was added.
            state.tasks[id] = Task {
                await work()
                self.state.withLockedValue { _ = $0.tasks.removeValue(forKey: id) }
            }
            return true
        }
    }

    /// How many are running.
    var count: Int { state.withLockedValue { $0.tasks.count } }

    /// Starts nothing more; lets what runs go on until `deadline`, then cancels the rest; returns
    /// once every one has ended.
    func close(by deadline: ContinuousClock.Instant) async {
        let running = state.withLockedValue { state in
            state.isClosed = true
            return Array(state.tasks.values)
        }
        guard !running.isEmpty else { return }
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for task in running { await task.value }
                return true
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return false
            }
            if await group.next() == false { running.forEach { $0.cancel() } }
            group.cancelAll()
        }
    }
}

/// Ends an ``OwnedTasks`` when the application stops (what is left of it gets `grace`, a second
/// unless said).
struct OwnedTasksShutdown: LifecycleHandler {
    let tasks: OwnedTasks
    var grace: Duration = .seconds(1)

    func shutdownAsync(_ application: Application) async {
        await tasks.close(by: .now + grace)
    }
}
