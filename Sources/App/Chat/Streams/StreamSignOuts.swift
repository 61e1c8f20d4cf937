import Fluent
import Foundation

/// Ends the open streams of sessions that were signed out — a password change or reset, a
/// deactivation, a takeover, a deletion — within moments, not at their token's expiry. Told each
/// time an account changes, in this process (``SignedInUsers/changed(_:)``) or on another instance
/// (over the bus); it reads the account as stored now and ends the streams opened with a token
/// from before its revocation cut (all of them when the account is gone or inactive).
struct StreamSignOuts: Sendable {
    let bus: any ChatEventBus
    let database: DatabaseAccess
    /// The reads it starts; shutdown ends them.
    let tasks: OwnedTasks

    /// Account `id` changed; nil: any may have (this instance could not hear for a while).
    func accountChanged(_ id: UUID?) {
        let users = id.map { [$0] } ?? bus.usersWithStreams.compactMap { UUID(hyphenated: $0) }
        guard !users.isEmpty else { return }
        tasks.run { [bus, database] in
            for user in users where bus.usersWithStreams.contains(user.lowercased) {
                do {
                    let db = try database()
                    let row = try await User.findForRequest(user, on: db)
                    if let row, row.isActive {
                        if let cut = row.sessionsRevokedAt { bus.endStreams(of: user.lowercased, issuedBefore: cut) }
                        // Streams opened with a key that is gone (revoked) end too.
                        let kept = try await APIKey.query(on: db).filter(\.$owner.$id == user).all(\.$id)
                        bus.endKeyStreams(of: user.lowercased, keeping: Set(kept))
                    } else {
                        bus.endStreams(of: user.lowercased, issuedBefore: nil)
                    }
                } catch {
                    // The database is away: the streams end at their token's expiry, as before.
                    continue
                }
            }
        }
    }
}
