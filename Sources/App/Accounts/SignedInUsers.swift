import Fluent
import Foundation

/// The accounts behind recent requests, kept in memory so that an authenticated request reads no
/// row for its user (whether the account exists, is active, and when its sessions were last
/// revoked: ``AccessTokenMiddleware``'s checks).
///
/// Whatever changes an account forgets it here at once, after its transaction commits: signing out
/// everywhere (a password change, a deactivation, a Google link that removed a password), an
/// admin's edit, a deletion (``changed(_:)``); on PostgreSQL every other instance forgets it too,
/// told over the event bus, and forgets every account when its listening connection was down (it
/// may have missed such news). See ``ChangeAwareCache`` for how a change and a read that races it
/// are told apart, and for ``maxAge``: the bound for changes made where no instance hears of them.
final class SignedInUsers: Sendable {
    /// How long an account is trusted without reading it again.
    static let maxAge: TimeInterval = 10
    /// Accounts kept at most; past it, those older than ``maxAge`` go, then all of them.
    static let capacity = 50_000

    /// An account that does not exist is not kept.
    private let cache: ChangeAwareCache<UUID, User.RequestRow?>

    init(clock: any WallClock) {
        cache = ChangeAwareCache(clock: clock, maxAge: Self.maxAge, capacity: Self.capacity)
    }

    /// The account `id` as a request needs it: kept, or read (and kept); nil when it does not exist.
    func user(_ id: UUID, on db: @autoclosure () -> any Database) async throws -> User? {
        try await cache.value(for: id, keeping: { $0 != nil }) { try await User.findForRequest(id, on: db()) }?.makeUser()
    }

    /// The account `id` changed (and the change is committed): forget it here and on every other instance.
    func changed(_ id: UUID) {
        cache.changed(id)
    }

    /// Forgets `id` (every account when nil) in this process only: what another instance says.
    func forget(_ id: UUID?) {
        cache.forget(id)
    }

    /// How ``changed(_:)`` tells the other instances (the event bus, on PostgreSQL).
    func announceChanges(_ send: @escaping @Sendable (UUID) -> Void) {
        cache.announceChanges { id in if let id { send(id) } }
    }

    /// Accounts kept now (for tests).
    var count: Int { cache.count }
}
