import Foundation
import Providers

/// The tool side of a reply: its calls, made and relayed and saved, and the quota between rounds.
extension ReplyRunner {
    /// Calls each tool the model called, in order, relaying and saving each call and its result;
    /// answers the results for the model. A stop during a call ends it, and the call is kept as
    /// stopped.
    func callTools(_ calls: [ModelToolCall], of reply: RunningReply, in toolBox: ToolBox, trace: ModelCallTrace) async throws -> [ModelToolResult] {
        var results: [ModelToolResult] = []
        for call in calls {
            guard reply.toolCalls.count < ToolBox.maxCallsPerReply else {
                results.append(ModelToolResult(callID: call.id, content: "Not called: this reply made \(ToolBox.maxCallsPerReply) calls, the most one may.",
                                               isError: true))
                continue
            }
            let name = toolBox.name(ofModelName: call.name) ?? call.name
            guard let index = reply.beginToolCall(id: call.id, name: name, arguments: call.arguments) else { throw CancellationError() }
            await progressed(reply)
            let started = ContinuousClock.now
            let server = toolBox.server(ofModelName: call.name)
            let span = trace.toolCall(name: name, id: call.id, server: server)
            let outcome: ToolOutcome
            do {
                outcome = try await toolBox.call(call.name, arguments: call.arguments)
            } catch {
                let ending: MessageStatus = reply.stopReason == .shutdown ? .failed : .cancelled
                span.end(isError: true, status: ending.rawValue)
                reply.finishToolCall(index, result: ReplyStore.unfinishedCall(ending), isError: true, duration: started.duration(to: .now))
                await progressed(reply)
                throw error
            }
            span.end(isError: outcome.isError)
            metrics.toolCalled(server: server ?? "unknown", isError: outcome.isError, duration: outcome.duration)
            reply.finishToolCall(index, result: outcome.content, isError: outcome.isError, duration: outcome.duration)
            await progressed(reply)
            results.append(ModelToolResult(callID: call.id, content: outcome.content, isError: outcome.isError))
        }
        return results
    }

    /// A call began or ended: this process's streams get it at once; it is saved, so that other
    /// instances' streams get it too and a restart finds it (when the save fails, the next checkpoint
    /// saves it).
    func progressed(_ reply: RunningReply) async {
        let live = reply.live
        var shown = reply.job.announced
        (shown.content, shown.reasoning, shown.toolCalls) = (live.text, live.reasoning, live.toolCalls)
        bus.replyProgressed(shown)
        await reply.saves.run { [store, clock, bus, logger] in
            let snapshot = reply.snapshot()
            do {
                guard try await store.checkpoint(reply.job.messageID, text: snapshot.text, reasoning: snapshot.reasoning,
                                                 toolCalls: snapshot.toolCalls, now: clock.now()) else { return }
                reply.saved(snapshot)
                bus.replySaved(chat: reply.job.chatID, message: reply.job.messageID, bytes: snapshot.bytes)
            } catch {
                logger.warning("could not save a tool call", metadata: ["chat": "\(reply.job.chatID)", "error": "\(error)"])
            }
        }
    }

    /// Whether the user's quota is spent, counting what this reply's rounds consumed so far (a
    /// reply in flight is never cut: its next round is its last).
    func quotaSpent(by reply: RunningReply) async throws -> Bool {
        guard let quota = reply.job.quota else { return false }
        let today = try await usage.tokensToday(of: reply.job.userID, on: store.database())
        return today + reply.usage.consumedEarlier >= quota
    }
}
