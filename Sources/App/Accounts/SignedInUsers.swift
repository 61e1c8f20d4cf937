import Fluent
import Foundation
import NIOConcurrencyHelpers

/// The accounts behind recent requests, kept in memory so that an authenticated request reads no
/// row for its user (whether the account exists, is active, and when its sessions were last
/// revoked: ``AccessTokenMiddleware``'s checks).
///
/// Whatever changes an account forgets it here at once, after its transaction commits: signing out
/// everywhere (a password change, a deactivation, a Google link that removed a password), an
/// admin's edit, a deletion (``changed(_:)``); on PostgreSQL every other instance forgets it too,
/// told over the event bus, and forgets every account when its listening connection was down (it
/// may have missed such news). A read that was under way when an account changed is not kept, so
/// an old row never outlives the change. Entries are read again after ``maxAge`` in any case: the
/// bound for changes made where no instance hears of them (a `chat-server` command on SQLite).
final class SignedInUsers: Sendable {
    private struct State {
        var entries = ExpiringCache<UUID, User.RequestRow>(capacity: SignedInUsers.capacity, sweepInterval: SignedInUsers.maxAge)
        /// Moves on every change, so that a read started before it is not kept.
        var generation: UInt64 = 0
    }

    /// How long an account is trusted without reading it again.
    static let maxAge: TimeInterval = 10
    /// Accounts kept at most; past it, those older than ``maxAge`` go, then all of them.
    static let capacity = 50_000

    private let state = NIOLockedValueBox(State())
    private let clock: any WallClock
    private let announce = NIOLockedValueBox<(@Sendable (UUID) -> Void)?>(nil)

    init(clock: any WallClock) {
        self.clock = clock
    }

    /// The account `id` as a request needs it: kept, or read (and kept); nil when it does not exist.
    func user(_ id: UUID, on db: @autoclosure () -> any Database) async throws -> User? {
        let now = clock.now()
        let (kept, generation) = state.withLockedValue { ($0.entries.value(for: id, now: now), $0.generation) }
        if let kept { return kept.makeUser() }
        guard let row = try await User.findForRequest(id, on: db()) else { return nil }
        state.withLockedValue { state in
            guard state.generation == generation else { return }
            state.entries.set(row, for: id, expiresAt: now.addingTimeInterval(Self.maxAge), now: now)
        }
        return row.makeUser()
    }

    /// The account `id` changed (and the change is committed): forget it here and on every other instance.
    func changed(_ id: UUID) {
        forget(id)
        announce.withLockedValue { $0 }?(id)
    }

    /// Forgets `id` (every account when nil) in this process only: what another instance says.
    func forget(_ id: UUID?) {
        state.withLockedValue { state in
            state.generation &+= 1
            if let id { state.entries.remove(id) } else { state.entries.removeAll() }
        }
    }

    /// How ``changed(_:)`` tells the other instances (the event bus, on PostgreSQL).
    func announceChanges(_ send: @escaping @Sendable (UUID) -> Void) {
        announce.withLockedValue { $0 = send }
    }

    /// Accounts kept now (for tests).
    var count: Int { state.withLockedValue { $0.entries.count } }
}
