/// A point in a chat's event stream, and the id of the event that reaches it.
///
/// Messages are numbered in the order they were written, and the current conversation's are sent
/// in that order. `7` means "message 7 delivered in full"; `7-120` means "message 7 delivered up to
/// byte 120 of its text" (a reply still arriving). Once the current conversation has changed (a
/// regeneration, an edit, a switch of version: the chat's revision), ids carry the revision:
/// `r2.7`, `r2.7-120`. Positions are ordered, revision first, so a reconnecting stream sends
/// exactly what follows the last id it got — or, when that id is of an older revision, says the
/// conversation changed and sends it whole.
struct StreamPosition: Comparable, Sendable, Hashable {
    var revision: Int
    var sequence: Int
    /// UTF-8 bytes of the message's text delivered, or nil when the message is delivered in full.
    var offset: Int?

    static func complete(_ sequence: Int, revision: Int = 0) -> StreamPosition {
        StreamPosition(revision: revision, sequence: sequence, offset: nil)
    }

    /// Before the first message of revision `revision`.
    static func start(of revision: Int) -> StreamPosition { StreamPosition(revision: revision, sequence: 0, offset: nil) }

    static let start = start(of: 0)

    init(revision: Int = 0, sequence: Int, offset: Int?) {
        self.revision = revision
        self.sequence = sequence
        self.offset = offset
    }

    /// Parses an event id; nil when it is not one.
    init?(eventID: String) {
        var rest = Substring(eventID)
        var revision = 0
        if rest.first == "r" {
            let parts = rest.dropFirst().split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let parsed = Int(parts[0]), parsed > 0 else { return nil }
            revision = parsed
            rest = parts[1]
        }
        let parts = rest.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let sequence = Int(parts[0]), sequence >= 0 else { return nil }
        if parts.count == 2 {
            guard let offset = Int(parts[1]), offset >= 0 else { return nil }
            self.init(revision: revision, sequence: sequence, offset: offset)
        } else {
            self.init(revision: revision, sequence: sequence, offset: nil)
        }
    }

    var eventID: String {
        let position = offset.map { "\(sequence)-\($0)" } ?? String(sequence)
        return revision == 0 ? position : "r\(revision).\(position)"
    }

    /// The same point in revision `revision`.
    func `in`(_ revision: Int) -> StreamPosition {
        StreamPosition(revision: revision, sequence: sequence, offset: offset)
    }

    static func < (lhs: StreamPosition, rhs: StreamPosition) -> Bool {
        if lhs.revision != rhs.revision { return lhs.revision < rhs.revision }
        if lhs.sequence != rhs.sequence { return lhs.sequence < rhs.sequence }
        switch (lhs.offset, rhs.offset) {
        case let (left?, right?): return left < right
        case (.some, nil): return true
        case (nil, _): return false
        }
    }
}
