/// A point in a chat's event stream, and the id of the event that reaches it.
///
/// Messages are numbered in conversation order. `7` means "message 7 delivered in full";
/// `7-120` means "message 7 delivered up to byte 120 of its text" (a reply still arriving).
/// Positions are ordered, so a reconnecting stream sends exactly what follows the last id it got.
struct StreamPosition: Comparable, Sendable, Hashable {
    var sequence: Int
    /// UTF-8 bytes of the message's text delivered, or nil when the message is delivered in full.
    var offset: Int?

    static func complete(_ sequence: Int) -> StreamPosition { StreamPosition(sequence: sequence, offset: nil) }

    /// Before the first message.
    static let start = StreamPosition(sequence: 0, offset: nil)

    init(sequence: Int, offset: Int?) {
        self.sequence = sequence
        self.offset = offset
    }

    /// Parses an event id; nil when it is not one.
    init?(eventID: String) {
        let parts = eventID.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let sequence = Int(parts[0]), sequence >= 0 else { return nil }
        if parts.count == 2 {
            guard let offset = Int(parts[1]), offset >= 0 else { return nil }
            self.init(sequence: sequence, offset: offset)
        } else {
            self.init(sequence: sequence, offset: nil)
        }
    }

    var eventID: String {
        offset.map { "\(sequence)-\($0)" } ?? String(sequence)
    }

    static func < (lhs: StreamPosition, rhs: StreamPosition) -> Bool {
        if lhs.sequence != rhs.sequence { return lhs.sequence < rhs.sequence }
        switch (lhs.offset, rhs.offset) {
        case let (left?, right?): return left < right
        case (.some, nil): return true
        case (nil, _): return false
        }
    }
}
