import Dispatch
import Fluent
import NIOPosix
import Vapor

/// SQLite's calls block the thread they run on — a writer waiting for the lock sleeps in it for up to
/// `busy_timeout` — so the embedded database gets threads of its own, one per connection (the driver
/// keeps one per event loop). On the process's shared blocking pool, as many threads as cores and
/// shared with password hashing and file reads, writers waiting for the lock could take every thread
/// while the connection holding it waited for one to commit (each waiter then failed "database is
/// locked" when its timeout ran out), and every query queued behind each password hash.
struct SQLiteThreads: DatabaseConfiguration {
    var base: any DatabaseConfiguration
    let threads: NIOThreadPool

    var middleware: [any AnyModelMiddleware] {
        get { base.middleware }
        set { base.middleware = newValue }
    }

    func makeDriver(for databases: Databases) -> any DatabaseDriver {
        base.makeDriver(for: Databases(threadPool: threads, on: databases.eventLoopGroup))
    }

    /// `base` on a pool of its own, a thread for each of its `connections`. The pool stops a while
    /// after the application has shut down (values in its storage go after its lifecycle handlers,
    /// Fluent's among them): Fluent closes idle connections at once, but one still leased by work
    /// that outlived the shutdown is closed when it comes back, and closing runs on these threads.
    static func own(_ base: DatabaseConfigurationFactory, connections: Int, _ app: Application) -> DatabaseConfigurationFactory {
        let threads = NIOThreadPool(numberOfThreads: connections)
        threads.start()
        app.storage.set(Key.self, to: threads) { threads in
            DispatchQueue.global().asyncAfter(deadline: .now() + closingGrace) { threads.shutdownGracefully { _ in } }
        }
        return DatabaseConfigurationFactory { SQLiteThreads(base: base.make(), threads: threads) }
    }

    /// Longer than any query takes (SQLite waits at most `busy_timeout`, 5 s, for its lock).
    static let closingGrace: DispatchTimeInterval = .seconds(30)

    private struct Key: StorageKey {
        typealias Value = NIOThreadPool
    }
}
