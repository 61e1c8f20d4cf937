@testable import App
import Foundation
import NIOConcurrencyHelpers
import Testing

/// Handlers kept for callbacks must not grow with use: a closure kept in a lock box was re-wrapped
/// in two reabstraction thunks each time it was read, so that every call went through all the
/// wrappers of every call before it (found by the soak: the bus's handler and the chat lists'
/// announcer took most of the server's CPU after ten minutes).
@Suite("Handlers kept for callbacks")
struct HandlerSlotTests {
    /// The stack depth at each call of a handler reached `calls` times through `call`.
    private func depths(calls: Int, _ install: (@escaping @Sendable () -> Void) -> Void, _ call: () -> Void) -> [Int] {
        let seen = NIOLockedValueBox<[Int]>([])
        install { seen.withLockedValue { $0.append(Thread.callStackReturnAddresses.count) } }
        for _ in 0..<calls { call() }
        return seen.withLockedValue { $0 }
    }

    @Test("a handler is as deep on its thousandth call as on its first")
    func slot() {
        let slot = HandlerSlot<String>()
        let seen = depths(calls: 1000, { handler in slot.set { _ in handler() } }, { slot("payload") })
        #expect(seen.count == 1000)
        #expect(seen.first == seen.last, "first call \(seen.first ?? 0) frames deep, last \(seen.last ?? 0)")
    }

    @Test("the chat lists' announcer and the bus's handlers do not deepen with use")
    func users() async throws {
        let cache = ChangeAwareCache<UUID, Int>(clock: SystemClock(), maxAge: 10, capacity: 10)
        let announced = depths(calls: 1000, { handler in cache.announceChanges { _ in handler() } }, { cache.changed(UUID()) })
        #expect(announced.first == announced.last, "first \(announced.first ?? 0) frames deep, last \(announced.last ?? 0)")

        try await withTestApp(.sqlite) { t in
            let bus = try #require(try t.services.chat.bus as? ChatBus)
            let changes = depths(calls: 1000, { handler in bus.onCachedChanges { _ in handler() } }, { bus.lostTrack() })
            #expect(changes.count == 1000 && changes.first == changes.last, "first \(changes.first ?? 0) frames deep, last \(changes.last ?? 0)")
        }
    }
}
