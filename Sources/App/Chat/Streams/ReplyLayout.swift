import Foundation

/// How a reply is laid out in stream segments, computed the same way on every instance from what
/// it holds — its reasoning, its answer and its tool calls — so that event ids agree everywhere.
///
/// A reply is asked of the model in rounds: each may reason, then answer, then call tools; the
/// next round starts once their results are in. Its segments, in the order they happened: each
/// round's reasoning (while it leads the round) and answer text, where not empty, and each call and
/// its result. A reply without tools has one round: its reasoning (segment 0) and answer (1), or
/// its answer alone (0), as before tools existed. Text and reasoning segments are delivered by
/// the byte; a call or a result whole (offset 1).
struct ReplyLayout {
    enum Segment: Equatable {
        /// Bytes of the reply's reasoning, and of its answer.
        case reasoning(Range<Int>)
        case answer(Range<Int>)
        /// The call at this index of the reply's calls, and its result.
        case toolCall(Int)
        case toolResult(Int)
    }

    let segments: [Segment]

    init(reasoningBytes: Int, textBytes: Int, toolCalls: [ToolCallRecord]) {
        var segments: [Segment] = []
        var reasoning = 0
        var text = 0
        for (index, call) in toolCalls.enumerated() {
            if call.reasoningOffset > reasoning {
                segments.append(.reasoning(reasoning..<call.reasoningOffset))
                reasoning = call.reasoningOffset
            }
            if call.textOffset > text {
                segments.append(.answer(text..<call.textOffset))
                text = call.textOffset
            }
            segments.append(.toolCall(index))
            if call.result != nil { segments.append(.toolResult(index)) }
        }
        if reasoningBytes > reasoning { segments.append(.reasoning(reasoning..<reasoningBytes)) }
        if textBytes > text || segments.isEmpty { segments.append(.answer(text..<max(text, textBytes))) }
        self.segments = segments
    }

    init(reasoning: String?, text: String, toolCalls: [ToolCallRecord]) {
        self.init(reasoningBytes: reasoning?.utf8.count ?? 0, textBytes: text.utf8.count, toolCalls: toolCalls)
    }

    /// Where a stream that has all of message `sequence` (laid out so) stands.
    func end(sequence: Int) -> StreamPosition {
        let last = segments.count - 1
        return StreamPosition(sequence: sequence, segment: last, offset: Self.length(of: segments[last]))
    }

    /// A segment's length as its offsets count it.
    static func length(of segment: Segment) -> Int {
        switch segment {
        case .reasoning(let bytes), .answer(let bytes): bytes.count
        case .toolCall, .toolResult: 1
        }
    }
}

/// Where the round in progress begins: the segments before it, and the answer's and the
/// reasoning's bytes before it. The next piece of text or reasoning goes where ``placement(of:reasoningBytes:textBytes:)`` says.
struct ReplyRound: Sendable, Equatable {
    var closedSegments = 0
    var textStart = 0
    var reasoningStart = 0

    /// The round after `toolCalls` (none: the first).
    init(after toolCalls: [ToolCallRecord]) {
        guard let last = toolCalls.last else { return }
        closedSegments = ReplyLayout(reasoningBytes: last.reasoningOffset, textBytes: last.textOffset, toolCalls: toolCalls).segments.count
        textStart = last.textOffset
        reasoningStart = last.reasoningOffset
    }

    /// The segment a piece of `kind` goes to, and the bytes of that segment before it, in a reply
    /// that holds `reasoningBytes` and `textBytes`; nil for reasoning once the round's answer began
    /// (reasoning streams only while it leads its round).
    func placement(of kind: ReplyDelta.Kind, reasoningBytes: Int, textBytes: Int) -> (segment: Int, offset: Int)? {
        switch kind {
        case .reasoning:
            guard textBytes == textStart else { return nil }
            return (closedSegments, reasoningBytes - reasoningStart)
        case .answer:
            return (closedSegments + (reasoningBytes > reasoningStart ? 1 : 0), textBytes - textStart)
        }
    }
}
