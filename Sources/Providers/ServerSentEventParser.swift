/// An incremental parser of `text/event-stream` (the WHATWG server-sent events format).
/// Feed it bytes as they arrive, split anywhere; it calls back once per complete event.
///
/// Lines are read in place from the bytes fed; only a line split across two reads, and the
/// fields of the event being built, are copied, into buffers that keep their capacity.
public struct ServerSentEventParser: Sendable {
    /// An event, copied out.
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

    /// An event as bytes, valid only during the callback that receives it.
    public struct RawEvent {
        /// The `event:` field's bytes; empty when absent (the type is then `message`).
        public let type: UnsafeRawBufferPointer
        /// The `data:` lines joined with newlines.
        public let data: UnsafeRawBufferPointer
        /// The last `id:` seen so far.
        public let id: String?
    }

    /// A line begun in an earlier read.
    private var partialLine: [UInt8] = []
    private var eventType: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var lastID: String?
    /// A CR ended the previous read; a LF at the start of the next belongs to the same line break.
    private var afterCarriageReturn = false

    public init() {
        data.reserveCapacity(256)
    }

    /// Bytes held for the event not yet complete: a reader that bounds what it accepts checks this.
    public var pendingBytes: Int { partialLine.count + data.count + eventType.count }

    private static let lf: UInt8 = 0x0A
    private static let cr: UInt8 = 0x0D
    private static let colon: UInt8 = 0x3A
    private static let space: UInt8 = 0x20

    /// Parses `bytes`, calling `emit` for each event they complete.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: (RawEvent) throws -> Void) rethrows {
        var index = 0
        if afterCarriageReturn, !bytes.isEmpty {
            afterCarriageReturn = false
            if bytes[0] == Self.lf { index = 1 }
        }
        var lineStart = index
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == Self.lf || byte == Self.cr else {
                index += 1
                continue
            }
            let piece = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<index])
            if partialLine.isEmpty {
                try endLine(piece, emit)
            } else {
                var line = partialLine
                partialLine = []
                line.append(contentsOf: piece)
                try line.withUnsafeBytes { try endLine($0, emit) }
                line.removeAll(keepingCapacity: true)
                partialLine = line
            }
            if byte == Self.cr {
                if index + 1 < bytes.count {
                    if bytes[index + 1] == Self.lf { index += 1 }
                } else {
                    afterCarriageReturn = true
                }
            }
            index += 1
            lineStart = index
        }
        if lineStart < bytes.count { partialLine.append(contentsOf: bytes[lineStart...]) }
    }

    /// Parses `bytes`, calling `emit` with each event they complete, copied out.
    public mutating func feed(_ bytes: some Collection<UInt8>, emit: (Event) throws -> Void) rethrows {
        let copy = Array(bytes)
        try copy.withUnsafeBytes { buffer in
            try feed(buffer) { raw in
                try emit(Event(
                    type: raw.type.isEmpty ? "message" : String(decoding: raw.type, as: UTF8.self),
                    data: String(decoding: raw.data, as: UTF8.self), id: raw.id
                ))
            }
        }
    }

    private mutating func endLine(_ line: UnsafeRawBufferPointer, _ emit: (RawEvent) throws -> Void) rethrows {
        guard let first = line.first else {
            try dispatch(emit)
            return
        }
        if first == Self.colon { return }  // a comment, e.g. a keep-alive

        let nameEnd = line.firstIndex(of: Self.colon) ?? line.endIndex
        var valueStart = nameEnd == line.endIndex ? nameEnd : nameEnd + 1
        if valueStart < line.endIndex, line[valueStart] == Self.space { valueStart += 1 }
        let name = UnsafeRawBufferPointer(rebasing: line[..<nameEnd])
        let value = UnsafeRawBufferPointer(rebasing: line[valueStart...])

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

    private mutating func dispatch(_ emit: (RawEvent) throws -> Void) rethrows {
        defer {
            data.removeAll(keepingCapacity: true)
            eventType.removeAll(keepingCapacity: true)
            hasData = false
        }
        guard hasData else { return }
        let id = lastID
        try eventType.withUnsafeBytes { type in
            try data.withUnsafeBytes { data in
                try emit(RawEvent(type: type, data: UnsafeRawBufferPointer(rebasing: data.dropLast()), id: id))
            }
        }
    }
}
