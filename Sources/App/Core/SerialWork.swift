import NIOConcurrencyHelpers

/// Runs async work one piece at a time, in the order it was asked for: writes that must not
/// overtake one another (the saves of one reply, each taking its snapshot when its turn comes).
/// A caller's cancellation does not cancel its piece: a save once begun completes.
final class SerialWork: Sendable {
    private let tail = NIOLockedValueBox<Task<Void, Never>?>(nil)

    func run<T: Sendable>(_ work: @escaping @Sendable () async -> T) async -> T {
        let task = tail.withLockedValue { tail -> Task<T, Never> in
            let previous = tail
            let task = Task<T, Never> {
                await previous?.value
                return await work()
            }
            tail = Task { _ = await task.value }
            return task
        }
        return await task.value
    }
}
