/// The provider used when no API key is configured, so a fresh install works end to end: it
/// streams a plainly labelled reply, word by word, and never contacts anyone (chats it names by
/// their question's first words, ``ChatTitling/firstWords(of:)``).
public struct OfflineProvider: ModelProvider {
    public static let modelID = "offline"
    public let name = "offline"
    /// The pause between two words, so the reply visibly streams.
    let wordDelay: Duration

    public init(wordDelay: Duration = .milliseconds(40)) {
        self.wordDelay = wordDelay
    }

    public func streamReply(_ request: ModelRequest, onEvent: @escaping @Sendable (ModelStreamEvent) -> Void) async throws -> ModelCompletion {
        let words = Self.reply(to: request)
        let inputTokens = request.messages.reduce(0) { $0 + $1.content.split(separator: " ").count }
        onEvent(.usage(ModelUsage(inputTokens: inputTokens), final: false))
        for (index, word) in words.enumerated() {
            if index > 0 { try await Task.sleep(for: wordDelay) }
            try Task.checkCancellation()
            onEvent(.text(word))
        }
        let usage = ModelUsage(inputTokens: inputTokens, outputTokens: words.count)
        onEvent(.usage(usage, final: true))
        return ModelCompletion(stopReason: "end_turn", usage: usage)
    }

    public func listModels(timeout: Duration) async throws -> [String] { [Self.modelID] }

    /// The reply's words, each with the space that follows it.
    static func reply(to request: ModelRequest) -> [String] {
        let said = request.messages.last(where: { $0.role == .user })?.content ?? ""
        let quoted = said.count > 200 ? String(said.prefix(200)) + "…" : said
        let text = "[Offline reply] This server has no model connected (ANTHROPIC_API_KEY is not set), "
            + "so this answer comes from ChatServer's built-in offline provider, not from Claude. "
            + "You wrote: “\(quoted)”. Set ANTHROPIC_API_KEY and restart the server to talk to Claude."
        var words: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if character == " " {
                words.append(current)
                current = ""
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }
}
