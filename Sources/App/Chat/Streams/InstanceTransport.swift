import Foundation

/// How instances that share a database tell each other what happens to chats and accounts
/// (``BusNotification``s), and who follows which chat. ``ChatBus`` runs over one; a single
/// instance (SQLite, or `EVENT_BUS=local`) has none.
protocol InstanceTransport: Sendable {
    /// Connects; from then on every notification another instance sends to a channel this one
    /// listens to goes to `receive` (with its sender), and `reconnected` is called when notifications
    /// may have been missed (a lost listener, or a sender that dropped some).
    func start(receive: @escaping @Sendable (BusNotification, _ sender: String) -> Void,
               reconnected: @escaping @Sendable () -> Void) async
    /// Sends `notification` to every instance that listens where it goes (its chat's channel, or
    /// the control channel every instance listens to).
    func send(_ notification: BusNotification)
    /// Listens to `chat`'s notifications from now on and asks whoever runs its reply how far it is;
    /// true once they reach this instance, false while it cannot listen (it catches up when it can).
    func follow(_ chat: UUID) async -> Bool
    /// Stops listening to `chat` and says so.
    func unfollow(_ chat: UUID)
    /// Whether another instance follows `chat` (so its reply's text is worth sending).
    func isFollowedElsewhere(_ chat: UUID) -> Bool
    /// Time passes: says again which chats this instance follows (`following`), now and then, and
    /// forgets other instances that have not said so for a while.
    func tick(now: Date, following: [UUID])
    /// Sends what is queued (briefly) and disconnects.
    func shutdown() async
}
