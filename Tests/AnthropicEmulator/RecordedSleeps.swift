import NIOConcurrencyHelpers

/// Records the waits a client asks for between retries instead of waiting, for tests to assert on.
public final class RecordedSleeps: Sendable {
    private let waits = NIOLockedValueBox<[Duration]>([])

    public init() {}

    public var all: [Duration] { waits.withLockedValue { $0 } }

    public var sleep: @Sendable (Duration) async throws -> Void {
        { [waits] duration in waits.withLockedValue { $0.append(duration) } }
    }
}
