import NIOConcurrencyHelpers

/// A handler set (or replaced) at any time and called from any thread.
///
/// A closure kept as the value of a lock box itself (`NIOLockedValueBox<((T) -> Void)?>`) is
/// re-wrapped on every `withLockedValue`: the box hands it out `inout` at its generic form, so each
/// access wraps it in a reabstraction thunk and stores it back wrapped in another. A handler read
/// once per event then grew two wrappers per event and each call went through all of them: a bus
/// handler after a day of traffic was millions of frames deep. Here the closure is a field of a
/// struct, which keeps its own form however the struct is passed.
final class HandlerSlot<Argument>: Sendable {
    private struct Stored: @unchecked Sendable {
        var call: (@Sendable (Argument) -> Void)?
    }

    private let stored = NIOLockedValueBox(Stored())

    init() {}

    /// Sets the handler (nil: none).
    func set(_ call: (@Sendable (Argument) -> Void)?) {
        stored.withLockedValue { $0.call = call }
    }

    /// The handler now.
    var handler: (@Sendable (Argument) -> Void)? {
        stored.withLockedValue { $0.call }
    }

    /// Calls the handler, if any, outside the lock.
    func callAsFunction(_ argument: Argument) {
        handler?(argument)
    }
}

extension HandlerSlot where Argument == Void {
    func callAsFunction() { handler?(()) }
}
