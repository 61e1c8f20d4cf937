@testable import App
import Foundation
import Testing

@Suite("The context window with files")
struct ConversationWindowFilesTests {
    static func image(megabytes: Int, width: Int = 1000, height: Int = 1000) -> FileRecord {
        FileRecord(id: UUID(), userID: UUID(), name: "a.png", mediaType: "image/png", size: megabytes << 20, sha256: "", width: width,
                   height: height, storage: "database", createdAt: Date())
    }

    static func turns(_ files: [[FileRecord]]) -> [ConversationWindow.Turn] {
        files.enumerated().flatMap { index, files in
            [ConversationWindow.Turn(role: .user, content: "Question \(index)", messages: 1, files: files),
             ConversationWindow.Turn(role: .assistant, content: "Answer \(index)", messages: 1)]
        }.dropLast()
    }

    @Test("images and PDFs count in tokens, and the oldest turns go when the request would pass its size limit")
    func binaryBudget() {
        let turns = Self.turns([[Self.image(megabytes: 10)], [Self.image(megabytes: 10)], [Self.image(megabytes: 10)]])
        let window = ConversationWindow(turns, budget: 1_000_000)
        // 24 MiB of images at most: the last two questions' 20 MB, not the first's.
        #expect(window.turns.count == 3)
        #expect(window.turns.first?.content == "Question 1")
        #expect(window.omittedMessages == 2)
        #expect(window.estimatedTokens > 2 * 1333)
    }

    @Test("a large image is estimated at what the API scales it to; a PDF at its pages")
    func estimates() {
        #expect(Attachments.estimatedTokens(Self.image(megabytes: 1, width: 100, height: 75)) == 20)
        #expect(Attachments.estimatedTokens(Self.image(megabytes: 1, width: 8000, height: 8000)) == 1610)
        var pdf = Self.image(megabytes: 1)
        (pdf.mediaType, pdf.pages) = ("application/pdf", 3)
        #expect(Attachments.estimatedTokens(pdf) == 6000)
    }
}
