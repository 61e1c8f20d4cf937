@testable import App
import Dispatch
import NIOPosix
import Testing

@Suite("The embedded database's threads")
struct DatabaseThreadsTests {
    /// Seen on a loaded CI run: creating a chat on SQLite answered 503 "database is locked". SQLite's
    /// calls block a thread — a writer waiting for the lock sleeps in it for up to `busy_timeout` — and
    /// they ran on the process's shared blocking pool (as many threads as cores), with password hashes
    /// and file reads: waiting writers could take every thread while the holder of the lock waited for
    /// one to commit, until their five seconds ran out; and every query queued behind each hash.
    @Test("SQLite's queries never wait for the shared blocking pool: with its every thread taken, chats are still read and written")
    func ownThreads() async throws {
        let shared = NIOThreadPool(numberOfThreads: 1)
        shared.start()
        try await withTestApp(.sqlite, blockingThreads: shared) { t in
            let session = try await t.register()  // a password hash: the shared pool's work
            let release = DispatchSemaphore(value: 0)
            await withCheckedContinuation { (taken: CheckedContinuation<Void, Never>) in
                shared.submit { _ in
                    taken.resume()
                    _ = release.wait(timeout: .now() + 60)
                }
            }
            defer { release.signal() }

            let answered = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    let created = try await t.send(.POST, "/api/chat/", json: ["title": "Held"], token: session.access)
                    #expect(created.status == .created, "\(created.body.string)")
                    let list = try await t.send(.GET, "/api/chat/", token: session.access)
                    #expect(list.status == .ok)
                    #expect(list.body.string.contains("Held"))
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(30))
                    return false
                }
                let first = try await group.next() ?? false
                release.signal()  // whichever came first, let the held thread go so the other ends
                group.cancelAll()
                return first
            }
            #expect(answered, "the requests waited for the shared blocking pool")
        }
    }
}
