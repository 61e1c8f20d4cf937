import Foundation
import NIOConcurrencyHelpers

/// The replies this process runs, by chat: shared by the runner, which starts and ends them, and
/// the event bus, which reads their text for new streams and passes on stops asked for elsewhere.
final class RunningReplies: Sendable {
    private struct State {
        var byChat: [UUID: RunningReply] = [:]
        var isDraining = false
    }

    private let state = NIOLockedValueBox(State())

    /// Adds `reply`; false while the server is stopping.
    func register(_ reply: RunningReply) -> Bool {
        state.withLockedValue { state in
            guard !state.isDraining else { return false }
            state.byChat[reply.job.chatID] = reply
            return true
        }
    }

    /// Removes `reply` if it is still the one registered for its chat.
    func remove(_ reply: RunningReply) {
        state.withLockedValue { state in
            if state.byChat[reply.job.chatID] === reply { state.byChat[reply.job.chatID] = nil }
        }
    }

    func reply(in chat: UUID) -> RunningReply? { state.withLockedValue { $0.byChat[chat] } }
    func liveReply(in chat: UUID) -> LiveReply? { reply(in: chat)?.live }
    var all: [RunningReply] { state.withLockedValue { Array($0.byChat.values) } }
    var count: Int { state.withLockedValue { $0.byChat.count } }
    var isDraining: Bool { state.withLockedValue { $0.isDraining } }

    /// Refuses new replies from now on; answers those in flight.
    func beginDraining() -> [RunningReply] {
        state.withLockedValue { state in
            state.isDraining = true
            return Array(state.byChat.values)
        }
    }

    /// Stops the reply in `chat`, if this process runs one.
    func stop(in chat: UUID, _ reason: ReplyStopReason) {
        reply(in: chat)?.stop(reason)
    }
}
