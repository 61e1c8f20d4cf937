/// Naming a conversation from its first exchange: the request a provider makes for it, and how
/// its answer becomes a title.
public enum ChatTitling {
    /// The system prompt of a title request (the Anthropic emulator tells title requests apart by it).
    public static let systemPrompt = "You name conversations. Answer with a title of two to six words that says what the "
        + "conversation is about, in the language of the question, with no quotes and no final punctuation."

    /// The most output a title takes.
    public static let maxTokens = 24

    /// The longest title kept, in Unicode scalar values (a title cut there ends with "…").
    public static let maxLength = 60

    /// The request for the title of the exchange `question` → `answer` (each cut to a few hundred
    /// characters: the start says what it is about), to `model`.
    public static func request(question: String, answer: String, model: String) -> ModelRequest {
        let prompt = "Question:\n" + String(question.prefix(600)) + "\n\nAnswer:\n" + String(answer.prefix(600))
            + "\n\nTitle of this conversation:"
        return ModelRequest(model: model, system: systemPrompt, messages: [ModelMessage(role: .user, content: prompt)],
                            maxTokens: maxTokens)
    }

    /// A model's answer as a title: one line, without quotes, a leading "Title:" or final
    /// punctuation, white space folded, at most ``maxLength`` characters; nil when nothing is left.
    public static func clean(_ answer: String) -> String? {
        var line = answer.split(whereSeparator: \.isNewline).first(where: { !$0.allSatisfy(\.isWhitespace) }).map(String.init) ?? ""
        line = line.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        if line.lowercased().hasPrefix("title:") { line = String(line.dropFirst(6)).trimmingCharacters(in: .whitespaces) }
        let quotes: Set<Character> = ["\"", "'", "“", "”", "‘", "’", "«", "»", "*", "`", "#"]
        while let first = line.first, quotes.contains(first) { line.removeFirst() }
        while let last = line.last, quotes.contains(last) || ".!:;,".contains(last) { line.removeLast() }
        line = line.trimmingCharacters(in: .whitespaces)
        guard !line.isEmpty else { return nil }
        return truncated(line)
    }

    /// `text` as at most `limit` Unicode scalar values — what a length limit counts (a character on
    /// screen may hold any number of combining marks) — cut with "…" where it is too long.
    public static func truncated(_ text: String, to limit: Int = maxLength) -> String {
        guard text.unicodeScalars.count > limit else { return text }
        var kept = String.UnicodeScalarView()
        kept.append(contentsOf: text.unicodeScalars.prefix(max(0, limit - 1)))
        return String(kept).trimmingCharacters(in: .whitespaces) + "…"
    }

    /// A chat's title while it has none of its own.
    public static let untitled = "New chat"

    /// The title a chat made without one carries until it is named: the first line of its first
    /// message, white space folded, at most ``maxLength`` characters.
    public static func placeholder(from content: String) -> String {
        let firstLine = content.split(whereSeparator: \.isNewline).first.map(String.init) ?? content
        let words = firstLine.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return words.isEmpty ? untitled : truncated(words)
    }

    /// A title from the question alone: its first words (what the offline provider gives).
    public static func firstWords(of question: String) -> String? {
        let words = question.split(whereSeparator: \.isWhitespace).prefix(8).joined(separator: " ")
        return clean(words)
    }
}
