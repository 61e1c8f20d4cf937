import Providers

/// What a reply consumed, however it ended: the provider's own figures where it sent them, else
/// the server's estimate (and marked as such), so that a reply stopped, cut short, failed or whose
/// chat was deleted still counts against its user's quota. A reply that calls tools asks the model
/// several times (rounds): each round counts, as it ended, and the reply's usage is their sum.
struct ReplyUsage: Sendable, Equatable {
    /// As the provider reported it so far in this round (input at the start, output at the end).
    private(set) var reported: ModelUsage?
    /// Whether the reported output count is the round's whole.
    private(set) var outputFinal = false
    /// This round's prompt as estimated before it was sent (``ConversationWindow``).
    var promptEstimate = 0
    /// The rounds before this one, as each was accounted when it ended.
    private(set) var earlier = ModelUsage()
    private(set) var earlierEstimated = false

    mutating func note(_ usage: ModelUsage, final: Bool) {
        reported = usage
        outputFinal = final
    }

    /// The round that wrote `output` ended with `completion`; the next one's prompt is estimated at `nextPrompt`.
    mutating func endRound(output: String, completion: ModelCompletion, nextPrompt: Int) {
        let (usage, estimated) = round(text: output, completion: completion)
        earlier = earlier + usage
        earlierEstimated = earlierEstimated || estimated
        (reported, outputFinal, promptEstimate) = (nil, false, nextPrompt)
    }

    /// Tokens of every kind the rounds before this one consumed.
    var consumedEarlier: Int { earlier.total }

    /// The usage to record for a reply whose last round ended with `text` (and `completion`, when
    /// it finished), the earlier rounds' added.
    func accounted(text: String, completion: ModelCompletion?) -> (usage: ModelUsage, estimated: Bool) {
        let (usage, estimated) = round(text: text, completion: completion)
        return (earlier + usage, earlierEstimated || estimated)
    }

    /// One round's usage: exact where the provider reported it; else its input as reported (or as
    /// estimated, once any text showed the prompt was read) and its output estimated from the text.
    private func round(text: String, completion: ModelCompletion?) -> (usage: ModelUsage, estimated: Bool) {
        if let exact = completion?.usage { return (exact, false) }
        if let reported, outputFinal { return (reported, false) }
        let output = Self.estimatedTokens(text)
        guard reported != nil || output > 0 else { return (ModelUsage(), false) }
        var usage = reported ?? ModelUsage(inputTokens: promptEstimate)
        usage.outputTokens = max(usage.outputTokens, output)
        return (usage, true)
    }

    /// Tokens `text` is estimated at: one per three bytes of UTF-8 (see ``ConversationWindow``).
    static func estimatedTokens(_ text: String) -> Int {
        text.isEmpty ? 0 : (text.utf8.count + 2) / 3
    }
}

extension ModelUsage {
    static func + (lhs: ModelUsage, rhs: ModelUsage) -> ModelUsage {
        ModelUsage(inputTokens: lhs.inputTokens + rhs.inputTokens, outputTokens: lhs.outputTokens + rhs.outputTokens,
                   cacheReadInputTokens: lhs.cacheReadInputTokens + rhs.cacheReadInputTokens,
                   cacheCreationInputTokens: lhs.cacheCreationInputTokens + rhs.cacheCreationInputTokens)
    }
}
