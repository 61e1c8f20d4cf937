import Providers

/// What a reply consumed, however it ended: the provider's own figures where it sent them, else
/// the server's estimate (and marked as such), so that a reply stopped, cut short, failed or whose
/// chat was deleted still counts against its user's quota.
struct ReplyUsage: Sendable, Equatable {
    /// As the provider reported it so far (input at the start, output at the end).
    private(set) var reported: ModelUsage?
    /// Whether the reported output count is the reply's whole.
    private(set) var outputFinal = false
    /// The prompt as estimated before it was sent (``ConversationWindow``).
    var promptEstimate = 0

    mutating func note(_ usage: ModelUsage, final: Bool) {
        reported = usage
        outputFinal = final
    }

    /// The usage to record for a reply that ended with `text` (and `completion`, when it finished):
    /// exact where the provider reported it; else its input as reported (or as estimated, once any
    /// text showed the prompt was read) and its output estimated from the text.
    func accounted(text: String, completion: ModelCompletion?) -> (usage: ModelUsage, estimated: Bool) {
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
