@testable import App
import Providers
import Testing

@Suite("A reply laid out in stream segments")
struct ReplyLayoutTests {
    /// A call made when the reply held `text` and `reasoning` bytes; answered unless `result` is nil.
    func call(_ id: String, text: Int, reasoning: Int, result: String? = "r") -> ToolCallRecord {
        ToolCallRecord(callID: id, name: "s.t", arguments: .object([:]), result: result, textOffset: text, reasoningOffset: reasoning)
    }

    @Test("without tools: the answer alone is segment 0, reasoning then answer are 0 and 1 (the ids handed out before tools)")
    func withoutTools() {
        #expect(ReplyLayout(reasoning: nil, text: "", toolCalls: []).segments == [.answer(0..<0)])
        #expect(ReplyLayout(reasoning: nil, text: "Hello", toolCalls: []).segments == [.answer(0..<5)])
        #expect(ReplyLayout(reasoning: "Hmm", text: "", toolCalls: []).segments == [.reasoning(0..<3)])
        #expect(ReplyLayout(reasoning: "Hmm", text: "Hi", toolCalls: []).segments == [.reasoning(0..<3), .answer(0..<2)])
        #expect(ReplyLayout(reasoning: "Hmm", text: "Hi", toolCalls: []).end(sequence: 4) == StreamPosition(sequence: 4, segment: 1, offset: 2))
    }

    @Test("rounds of calls: each round's reasoning and answer where not empty, each call and its result, in order; the next piece goes where the layout will have it")
    func rounds() {
        // Round 1: reasons 4 bytes, says 6, calls a and b; round 2: says nothing, calls c (running).
        let calls = [call("a", text: 6, reasoning: 4), call("b", text: 6, reasoning: 4), call("c", text: 6, reasoning: 4, result: nil)]
        let layout = ReplyLayout(reasoningBytes: 4, textBytes: 6, toolCalls: calls)
        #expect(layout.segments == [.reasoning(0..<4), .answer(0..<6), .toolCall(0), .toolResult(0), .toolCall(1), .toolResult(1), .toolCall(2)])
        #expect(layout.end(sequence: 2) == StreamPosition(sequence: 2, segment: 6, offset: 1))

        // c answered: round 3 reasons, then answers; pieces are placed where the layout puts them.
        var answered = calls
        answered[2].result = "done"
        let round = ReplyRound(after: answered)
        #expect(round.closedSegments == 8)
        #expect(round.placement(of: .reasoning, reasoningBytes: 4, textBytes: 6)! == (8, 0))
        #expect(round.placement(of: .answer, reasoningBytes: 9, textBytes: 6)! == (9, 0))
        #expect(round.placement(of: .answer, reasoningBytes: 9, textBytes: 10)! == (9, 4))
        #expect(round.placement(of: .reasoning, reasoningBytes: 9, textBytes: 10) == nil, "reasoning once the round's answer began")
        #expect(ReplyLayout(reasoningBytes: 9, textBytes: 10, toolCalls: answered).segments.suffix(2) == [.reasoning(4..<9), .answer(6..<10)])
        // A round that answers without reasoning: its answer comes right after the last result.
        #expect(round.placement(of: .answer, reasoningBytes: 4, textBytes: 6)! == (8, 0))
        #expect(ReplyLayout(reasoningBytes: 4, textBytes: 8, toolCalls: answered).segments.last == .answer(6..<8))
    }

    @Test("positions of every segment are ordered as the segments are, and parse back from their ids")
    func positionsOrdered() {
        let calls = [call("a", text: 3, reasoning: 0), call("b", text: 7, reasoning: 2)]
        let layout = ReplyLayout(reasoningBytes: 2, textBytes: 9, toolCalls: calls)
        let ends = layout.segments.indices.map { StreamPosition(sequence: 5, segment: $0, offset: ReplyLayout.length(of: layout.segments[$0])) }
        #expect(ends == ends.sorted())
        #expect(ends.allSatisfy { StreamPosition(eventID: $0.eventID) == $0 })
        #expect(ends.last! < StreamPosition.complete(5))
    }
}
