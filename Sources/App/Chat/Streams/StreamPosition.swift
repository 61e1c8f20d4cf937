/// A point in a chat's event stream, and the id of the event that reaches it.
///
/// Messages are numbered in the order they were written, and the current conversation's are sent
/// in that order. `7` means "message 7 delivered in full". A reply still arriving is delivered in
/// segments — its reasoning, if it has any, then its answer — and `7-120` means "segment 0 of
/// message 7 delivered up to byte 120", `7.1-40` "segment 1 up to byte 40" (so the answer of a
/// reply without reasoning is `7-B`, as before reasoning existed: ids handed out earlier keep
/// working). Once the current conversation has changed (a regeneration, an edit, a switch of
/// version: the chat's revision), ids carry the revision: `r2.7`, `r2.7-120`, `r2.7.1-40`. Positions
/// are ordered, revision first, so a reconnecting stream sends exactly what follows the last id it
/// got — or, when that id is of an older revision, says the conversation changed and sends it whole.
struct StreamPosition: Comparable, Sendable, Hashable {
    var revision: Int
    var sequence: Int
    /// Which segment of the message (0: the first), when it is delivered in part.
    var segment: Int
    /// UTF-8 bytes of the segment delivered, or nil when the message is delivered in full.
    var offset: Int?

    static func complete(_ sequence: Int, revision: Int = 0) -> StreamPosition {
        StreamPosition(revision: revision, sequence: sequence, offset: nil)
    }

    /// Before the first message of revision `revision`.
    static func start(of revision: Int) -> StreamPosition { StreamPosition(revision: revision, sequence: 0, offset: nil) }

    static let start = start(of: 0)

    init(revision: Int = 0, sequence: Int, segment: Int = 0, offset: Int?) {
        self.revision = revision
        self.sequence = sequence
        self.segment = segment
        self.offset = offset
    }

    /// Parses an event id; nil when it is not one (every number in range, none negative).
    init?(eventID: String) {
        guard eventID.utf8.count <= 64 else { return nil }
        var rest = Substring(eventID)
        var revision = 0
        if rest.first == "r" {
            let parts = rest.dropFirst().split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let parsed = Int(parts[0]), parsed > 0 else { return nil }
            revision = parsed
            rest = parts[1]
        }
        let parts = rest.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { return nil }
        let message = parts[0].split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(message.count), let sequence = Int(message[0]), sequence >= 0 else { return nil }
        if parts.count == 2 {
            let segment = message.count == 2 ? Int(message[1]) : 0
            guard let segment, segment >= 0, let offset = Int(parts[1]), offset >= 0 else { return nil }
            self.init(revision: revision, sequence: sequence, segment: segment, offset: offset)
        } else {
            guard message.count == 1 else { return nil }
            self.init(revision: revision, sequence: sequence, offset: nil)
        }
    }

    var eventID: String {
        let position: String
        if let offset {
            position = segment == 0 ? "\(sequence)-\(offset)" : "\(sequence).\(segment)-\(offset)"
        } else {
            position = String(sequence)
        }
        return revision == 0 ? position : "r\(revision).\(position)"
    }

    /// The same point in revision `revision`.
    func `in`(_ revision: Int) -> StreamPosition {
        StreamPosition(revision: revision, sequence: sequence, segment: segment, offset: offset)
    }

    static func < (lhs: StreamPosition, rhs: StreamPosition) -> Bool {
        if lhs.revision != rhs.revision { return lhs.revision < rhs.revision }
        if lhs.sequence != rhs.sequence { return lhs.sequence < rhs.sequence }
        switch (lhs.offset, rhs.offset) {
        case let (left?, right?): return (lhs.segment, left) < (rhs.segment, right)
        case (.some, nil): return true
        case (nil, _): return false
        }
    }
}
