@testable import App
import Foundation
import NIOCore
import Testing

/// The hand-written JSON of the hot responses must be exactly what the contract's encoder writes.
@Suite("Hand-written JSON")
struct JSONWriterTests {
    /// Text that exercises every escape: quotes, backslashes, each control character, slashes,
    /// DEL, non-ASCII, the line and paragraph separators, emoji.
    static let awkward = "\"quoted\" back\\slash /slash \u{7F} é 中文 \u{2028}\u{2029} 👩‍👩‍👧"
        + String((0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) })

    static func randomText(_ generator: inout some RandomNumberGenerator) -> String {
        let pieces = ["a", " ", "\"", "\\", "\n", "\t", "\u{0}", "\u{1F}", "/", "é", "😀", "\u{2028}", "<", "&", "\u{8}", "\u{C}"]
        return String((0..<Int.random(in: 0...30, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined())
    }

    static func randomDate(_ generator: inout some RandomNumberGenerator) -> Date {
        // Whole microseconds between 1970 and 2100, as times are stored.
        Date(timeIntervalSince1970: Double(Int64.random(in: 0...4_102_444_800_000_000, using: &generator)) / 1_000_000)
    }

    static func randomMessage(_ generator: inout some RandomNumberGenerator) -> MessageResponse {
        let stored = Message(chatID: UUID(), sequence: 0, role: .assistant, content: "", status: .complete, model: "m")
        stored.id = UUID()
        var message = try! MessageResponse(stored)
        message.chatID = UUID().lowercased
        message.sequence = Int.random(in: 0...1_000_000, using: &generator)
        message.role = Bool.random(using: &generator) ? .user : .assistant
        message.content = randomText(&generator)
        message.status = [.complete, .streaming, .failed, .cancelled].randomElement(using: &generator)!
        message.model = randomText(&generator)
        message.inputTokens = Int.random(in: 0...Int(Int32.max), using: &generator)
        message.outputTokens = Int.random(in: 0...100_000, using: &generator)
        message.cacheReadInputTokens = Int.random(in: 0...100_000, using: &generator)
        message.cacheCreationInputTokens = Int.random(in: 0...100_000, using: &generator)
        message.omittedMessages = Int.random(in: 0...10, using: &generator)
        message.stopReason = Bool.random(using: &generator) ? randomText(&generator) : nil
        message.error = Bool.random(using: &generator) ? randomText(&generator) : nil
        message.createdAt = Bool.random(using: &generator) ? randomDate(&generator) : nil
        message.parentID = Bool.random(using: &generator) ? UUID().lowercased : nil
        message.current = Bool.random(using: &generator)
        message.versions = Int.random(in: 1...5, using: &generator)
        message.version = Int.random(in: 1...message.versions, using: &generator)
        message.toolCalls = (0..<Int.random(in: 0...3, using: &generator)).map { _ in
            ToolCallRecord(callID: randomText(&generator), name: randomText(&generator),
                           arguments: .object([randomText(&generator): .array([.number(Double(Int.random(in: -99...99, using: &generator))),
                                                                               .number(0.25), .string(randomText(&generator)), .null, .bool(true)])]),
                           result: Bool.random(using: &generator) ? randomText(&generator) : nil, isError: Bool.random(using: &generator),
                           durationMs: Bool.random(using: &generator) ? Int.random(in: 0...100_000, using: &generator) : nil,
                           textOffset: 0, reasoningOffset: 0)
        }
        return message
    }

    static func randomSummary(_ generator: inout some RandomNumberGenerator) -> ChatSummaryResponse {
        ChatSummaryResponse(ChatSummaryRow(
            id: UUID(), title: randomText(&generator), model: randomText(&generator),
            system: Bool.random(using: &generator) ? randomText(&generator) : nil,
            createdAt: Bool.random(using: &generator) ? randomDate(&generator) : nil,
            updatedAt: Bool.random(using: &generator) ? randomDate(&generator) : nil,
            lastMessageAt: Bool.random(using: &generator) ? randomDate(&generator) : nil,
            activityAt: randomDate(&generator), tools: (0..<Int.random(in: 0...3, using: &generator)).map { _ in randomText(&generator) }))
    }

    func expectSameBytes<T: Encodable & JSONWritable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let reference = String(decoding: try JSONCoding.makeEncoder().encode(value), as: UTF8.self)
        let written = String(buffer: value.jsonBuffer())
        #expect(written == reference, sourceLocation: sourceLocation)
    }

    @Test("every response shape written by hand equals the encoder's output, over random values with every escape")
    func sameBytesAsTheEncoder() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let messages = (0..<Int.random(in: 0...3)).map { _ in Self.randomMessage(&generator) }
            try expectSameBytes(Self.randomMessage(&generator))
            let summary = Self.randomSummary(&generator)
            try expectSameBytes(summary)
            var chat = ChatResponse(summary: summary, messages: messages)
            try expectSameBytes(chat)
            chat.messages = []
            try expectSameBytes(chat)
            try expectSameBytes(ChatListResponse(results: (0..<Int.random(in: 0...3)).map { _ in Self.randomSummary(&generator) },
                                                 next: Bool.random() ? Self.randomText(&generator) : nil))
            try expectSameBytes(SendResponse(userMessage: Self.randomMessage(&generator), assistantMessage: Self.randomMessage(&generator)))
            try expectSameBytes(RegenerateResponse(assistantMessage: Self.randomMessage(&generator)))
            try expectSameBytes(MessageListResponse(results: messages))
        }
        var message = Self.randomMessage(&generator)
        message.content = Self.awkward
        try expectSameBytes(message)
    }

    @Test("identifiers are written lowercase and hyphenated, as uuidString lowercased")
    func identifiers() {
        for _ in 0..<10_000 {
            let id = UUID()
            #expect(id.lowercased == id.uuidString.lowercased())
            #expect(UUID(hyphenated: id.uuidString) == id && UUID(hyphenated: id.lowercased) == id)
        }
        for malformed in ["", "not-a-uuid", "00010203-0405-0607-0809-0a0b0c0d0e", "00010203-0405-0607-0809_0a0b0c0d0eff",
                          "0001020g-0405-0607-0809-0a0b0c0d0eff", "00010203-0405-0607-0809-0a0b0c0d0eff0"] {
            #expect(UUID(hyphenated: malformed) == nil, "\(malformed)")
        }
        #expect(UUID(uuid: (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255)).lowercased == "00010203-0405-0607-0809-0a0b0c0d0eff")
    }

    @Test("times are RFC 3339 UTC with milliseconds, as Foundation formats them, for any stored time")
    func rfc3339() {
        // Foundation cuts the binary value (1018770501.852 is stored as 1018770501.85199999…, shown
        // as .851); ours rounds to the microsecond first, as the value was stored. Half a
        // microsecond added gives Foundation the same starting point.
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
        var generator = SystemRandomNumberGenerator()
        var dates = (0..<20_000).map { _ in Self.randomDate(&generator) }
        dates += [Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 951_782_400.999), // 2000-02-29
                  Date(timeIntervalSince1970: 4_107_542_399.999_999), Date(timeIntervalSince1970: 1_796_003_128.607)]
        for date in dates {
            #expect(RFC3339.string(date) == date.addingTimeInterval(0.000_000_5).formatted(style), "\(date.timeIntervalSince1970)")
        }
        #expect(RFC3339.string(Date(timeIntervalSince1970: 1_796_003_128.607)) == "2026-11-30T01:45:28.607Z")
        #expect(RFC3339.string(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
        #expect(RFC3339.string(Date(timeIntervalSince1970: 1_018_770_501.852)) == "2002-04-14T07:48:21.852Z")
    }
}
