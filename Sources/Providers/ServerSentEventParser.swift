/// An incremental parser of `text/event-stream` (the WHATWG server-sent events format).
/// Feed it bytes as they arrive, split anywhere; it calls back once per complete event.
public struct ServerSentEventParser: Sendable {
    public struct Event: Sendable, Equatable {
        /// The `event:` field, or `message` when absent.
        public var type: String
        /// The `data:` lines joined with newlines.
        public var data: String
        /// The last `id:` seen so far, as the format defines it.
        public var id: String?

        public init(type: String, data: String, id: String? = nil) {
            self.type = type
            self.data = data
            self.id = id
        }
    }

    private var line: [UInt8] = []
    private var eventType: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var lastID: String?
    /// A CR ended the previous line; a LF right after it belongs to the same line break.
    private var afterCarriageReturn = false

    public init() {
        line.reserveCapacity(256)
        data.reserveCapacity(256)
    }

    private static let lf: UInt8 = 0x0A
    private static let cr: UInt8 = 0x0D
    private static let colon: UInt8 = 0x3A
    private static let space: UInt8 = 0x20

    /// Parses `bytes`, calling `emit` for each event they complete.
    public mutating func feed(_ bytes: some Collection<UInt8>, emit: (Event) throws -> Void) rethrows {
        for byte in bytes {
            if afterCarriageReturn {
                afterCarriageReturn = false
                if byte == Self.lf { continue }
            }
            switch byte {
            case Self.lf:
                try endLine(emit)
            case Self.cr:
                afterCarriageReturn = true
                try endLine(emit)
            default:
                line.append(byte)
            }
        }
    }

    private mutating func endLine(_ emit: (Event) throws -> Void) rethrows {
        defer { line.removeAll(keepingCapacity: true) }
        guard let first = line.first else {
            try dispatch(emit)
            return
        }
        if first == Self.colon { return }  // a comment, e.g. a keep-alive

        let nameEnd = line.firstIndex(of: Self.colon) ?? line.endIndex
        var valueStart = nameEnd == line.endIndex ? nameEnd : line.index(after: nameEnd)
        if valueStart < line.endIndex, line[valueStart] == Self.space { valueStart = line.index(after: valueStart) }
        let name = line[..<nameEnd]
        let value = line[valueStart...]

        if name.elementsEqual("data".utf8) {
            data.append(contentsOf: value)
            data.append(Self.lf)
            hasData = true
        } else if name.elementsEqual("event".utf8) {
            eventType.removeAll(keepingCapacity: true)
            eventType.append(contentsOf: value)
        } else if name.elementsEqual("id".utf8), !value.contains(0) {
            lastID = String(decoding: value, as: UTF8.self)
        }
        // `retry:` and unknown fields are ignored, as the format says.
    }

    private mutating func dispatch(_ emit: (Event) throws -> Void) rethrows {
        defer {
            data.removeAll(keepingCapacity: true)
            eventType.removeAll(keepingCapacity: true)
            hasData = false
        }
        guard hasData else { return }
        let type = eventType.isEmpty ? "message" : String(decoding: eventType, as: UTF8.self)
        let text = String(decoding: data.dropLast(), as: UTF8.self)
        try emit(Event(type: type, data: text, id: lastID))
    }
}
