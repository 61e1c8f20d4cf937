import Foundation
import NIOCore

/// The first page of each user's chat list — `GET /api/chat/` without a search or a cursor, the
/// request a client repeats most — kept as the response body it was, so that asking again reads
/// nothing from the database and encodes nothing.
///
/// Whatever changes a user's chats (or how they sort) calls ``changed(_:)`` after its transaction
/// commits: a chat created, renamed or otherwise edited (by its owner, the admin or the titler),
/// deleted; a message sent, a reply regenerated, edited or ended; a version chosen; the user
/// deleted. Other instances forget it too, over the event bus (``ChangeAwareCache``). A page is
/// read again after ``maxAge`` in any case, the bound for a change no instance hears of (the
/// `cleanup` command on SQLite); only pages of up to ``maxPageBytes`` are kept, for at most
/// ``capacity`` users, so that the cache stays under 32 MiB whatever the users write.
final class ChatLists: Sendable {
    /// How long a page is answered without reading it again.
    static let maxAge: TimeInterval = 10
    /// Users whose first page is kept at most.
    static let capacity = 2_048
    /// The largest page kept (a page of long titles or system prompts is read each time).
    static let maxPageBytes = 16 * 1024

    /// A first page as answered, for the `limit` it was asked with.
    struct Page: Sendable {
        var limit: Int
        var body: ByteBuffer
    }

    private let cache: ChangeAwareCache<UUID, Page>

    init(clock: any WallClock) {
        cache = ChangeAwareCache(clock: clock, maxAge: Self.maxAge, capacity: Self.capacity)
    }

    /// The body of `user`'s first page of `limit` chats: kept, or `read` (and kept when small enough).
    func firstPage(of user: UUID, limit: Int, read: () async throws -> ByteBuffer) async throws -> ByteBuffer {
        try await cache.value(for: user, usable: { $0.limit == limit }, keeping: { $0.body.readableBytes <= Self.maxPageBytes }) {
            Page(limit: limit, body: try await read())
        }.body
    }

    /// `user`'s chats changed (and the change is committed): their page is read again, here and on every instance.
    func changed(_ user: UUID) {
        cache.changed(user)
    }

    /// Chats of many users changed at once (the idle chats swept): every page is read again, everywhere.
    func changedAll() {
        cache.changedAll()
    }

    /// Forgets `user`'s page (every page when nil) in this process only: what another instance says.
    func forget(_ user: UUID?) {
        cache.forget(user)
    }

    /// How changes are told to the other instances (nil: every user's).
    func announceChanges(_ send: @escaping @Sendable (UUID?) -> Void) {
        cache.announceChanges(send)
    }

    /// Pages kept now (for tests).
    var count: Int { cache.count }
}
