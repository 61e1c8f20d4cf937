import Foundation
import NIOConcurrencyHelpers

/// Rows read from the database and kept in memory between requests, forgotten at once when they
/// change: the mechanism behind the signed-in accounts (``SignedInUsers``) and the chat lists
/// (``ChatLists``).
///
/// Whatever changes what a key reads calls ``changed(_:)`` once its transaction committed: the key
/// is forgotten here and, through ``announceChanges(_:)`` (the event bus on PostgreSQL), on every
/// other instance, which call ``forget(_:)`` — with nil, every key, when they may have missed such
/// news. A read that was under way when anything changed is not kept, so an old row never outlives
/// the change. Entries are read again after `maxAge` in any case: the bound for changes made where
/// no instance hears of them (a `chat-server` command on SQLite).
final class ChangeAwareCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct State {
        var entries: ExpiringCache<Key, Value>
        /// Moves on every change, so that a read started before it is not kept.
        var generation: UInt64 = 0
    }

    let maxAge: TimeInterval
    private let state: NIOLockedValueBox<State>
    private let clock: any WallClock
    private let announce = HandlerSlot<Key?>()

    /// Keeps at most `capacity` entries (past it, the expired ones go, then all of them).
    init(clock: any WallClock, maxAge: TimeInterval, capacity: Int) {
        self.clock = clock
        self.maxAge = maxAge
        state = NIOLockedValueBox(State(entries: ExpiringCache(capacity: capacity, sweepInterval: maxAge)))
    }

    /// What is kept for `key` when `usable` accepts it; else what `read` answers, kept for next time
    /// when `keeping` accepts it (and nothing changed while it was read).
    func value(for key: Key, usable: (Value) -> Bool = { _ in true }, keeping: (Value) -> Bool = { _ in true },
               read: () async throws -> Value) async throws -> Value {
        let now = clock.now()
        let (kept, generation) = state.withLockedValue { ($0.entries.value(for: key, now: now), $0.generation) }
        if let kept, usable(kept) { return kept }
        let value = try await read()
        guard keeping(value) else { return value }
        state.withLockedValue { state in
            guard state.generation == generation else { return }
            state.entries.set(value, for: key, expiresAt: now.addingTimeInterval(maxAge), now: now)
        }
        return value
    }

    /// What `key` reads changed (and the change is committed): forget it here and on every other instance.
    func changed(_ key: Key) {
        forget(key)
        announce(key)
    }

    /// Anything may have changed (a change too wide to name every key): forget every key here and on
    /// every other instance.
    func changedAll() {
        forget(nil)
        announce(nil)
    }

    /// Forgets `key` (every key when nil) in this process only: what another instance says.
    func forget(_ key: Key?) {
        state.withLockedValue { state in
            state.generation &+= 1
            if let key { state.entries.remove(key) } else { state.entries.removeAll() }
        }
    }

    /// How ``changed(_:)`` and ``changedAll()`` (nil) tell the other instances.
    func announceChanges(_ send: @escaping @Sendable (Key?) -> Void) {
        announce.set(send)
    }

    /// Entries kept now (for tests).
    var count: Int { state.withLockedValue { $0.entries.count } }
}
