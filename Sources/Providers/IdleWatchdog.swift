import NIOConcurrencyHelpers

/// Counts what arrives from upstream — the response head, each read of its body — so that a
/// watchdog can tell silence from progress without touching the read path beyond one increment.
final class UpstreamActivity: Sendable {
    private let count = NIOLockedValueBox(0)

    func touch() { count.withLockedValue { $0 += 1 } }
    var value: Int { count.withLockedValue { $0 } }
}

/// Fails an upstream request that says nothing for too long: no response head within
/// `firstByte`, then no bytes for `idle` at a time. It runs on the configured clock (tests move a
/// manual one), one task per request and nothing per read, and fires between one and two periods
/// after the last activity.
struct IdleWatchdog: Sendable {
    let clock: any Clock<Duration>
    let firstByte: Duration
    let idle: Duration

    /// Watches `activity` until cancelled; calls `expire` once when the upstream stays silent.
    func watch(_ activity: UpstreamActivity, expire: @escaping @Sendable (ProviderError) -> Void) -> Task<Void, Never> {
        Task { [clock, firstByte, idle] in
            var seen = activity.value
            while true {
                let heardAnything = seen > 0
                do {
                    try await clock.sleep(for: heardAnything ? idle : firstByte)
                } catch {
                    return  // cancelled: the request is over
                }
                let now = activity.value
                guard now == seen else {
                    seen = now
                    continue
                }
                expire(heardAnything
                    ? ProviderError(.timeout, "nothing received for \(idle)")
                    : ProviderError(.timeout, "no response within \(firstByte)"))
                return
            }
        }
    }
}
