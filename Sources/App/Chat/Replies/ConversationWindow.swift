import Providers

/// What of a conversation fits a model's context: the whole of it while it fits, else its most
/// recent turns. The system prompt and the latest user turn are always sent; the oldest turns go
/// first, and the part sent always starts with a user turn, as the API requires.
///
/// Sizes are estimated before sending, at one token per three bytes of UTF-8 (tokenizers give about
/// four characters of English per token; three bytes is conservative for other scripts too) plus
/// a few tokens per message.
struct ConversationWindow {
    /// A turn of the conversation as the model sees it: messages of the same role run together.
    struct Turn {
        var role: ModelMessage.Role
        var content: String
        /// Stored messages that make it.
        var messages: Int
        /// The files its messages carry.
        var files: [FileRecord] = []

        /// The bytes of its files (images and PDFs travel base64-encoded).
        var fileBytes: Int { files.reduce(0) { $0 + $1.size } }
        /// The pages of its PDFs.
        var pages: Int { files.reduce(0) { $0 + ($1.pages ?? 0) } }

        /// Tokens the turn is estimated at, its files included.
        var estimatedTokens: Int {
            ConversationWindow.estimatedTokens(content) + files.reduce(0) { $0 + Attachments.estimatedTokens($1) }
        }
    }

    /// The turns sent, and how many stored messages were left out.
    let turns: [Turn]
    let omittedMessages: Int
    /// Tokens the turns sent are estimated at.
    let estimatedTokens: Int

    /// Conversations whose sent part is estimated at least this long mark a cache breakpoint
    /// (shorter prompts are not cached by the provider).
    static let cacheableTokens = 1024

    static func estimatedTokens(_ text: String) -> Int { (text.utf8.count + 2) / 3 + 4 }

    /// Fits `turns` (oldest first, the last the user's newest) into `budget` tokens, their files
    /// into `fileBudget` bytes (a provider's request has a size limit too), and their PDFs into
    /// `pageBudget` pages (Claude reads 100 a request).
    init(_ turns: [Turn], budget: Int, fileBudget: Int = FileSettings.maxBytesPerMessage, pageBudget: Int = .max) {
        var kept: [Turn] = []
        var used = 0
        var bytes = 0
        var pages = 0
        for turn in turns.reversed() {
            let cost = turn.estimatedTokens
            if !kept.isEmpty, used + cost > budget || bytes + turn.fileBytes > fileBudget || pages + turn.pages > pageBudget { break }
            kept.append(turn)
            used += cost
            bytes += turn.fileBytes
            pages += turn.pages
        }
        kept.reverse()
        while kept.count > 1, kept.first?.role == .assistant { kept.removeFirst() }
        self.turns = kept
        estimatedTokens = kept.reduce(0) { $0 + $1.estimatedTokens }
        omittedMessages = turns.reduce(0) { $0 + $1.messages } - kept.reduce(0) { $0 + $1.messages }
    }

    /// The messages to send; with caching, the turn before the newest user turn marks where the
    /// next request's prompt will start to differ.
    func messages(caching: Bool) -> [ModelMessage] {
        let prefixTokens = turns.dropLast().reduce(0) { $0 + $1.estimatedTokens }
        let breakpoint = caching && turns.count >= 2 && prefixTokens >= Self.cacheableTokens ? turns.count - 2 : nil
        return turns.enumerated().map { index, turn in
            ModelMessage(role: turn.role, content: turn.content, cacheBreakpoint: index == breakpoint)
        }
    }
}
