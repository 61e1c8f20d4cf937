import Foundation
import NIOCore

extension Duration {
    /// The duration in seconds, for `Date` arithmetic.
    var seconds: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// The duration in milliseconds, for log lines.
    var milliseconds: Double { seconds * 1000 }

    /// The same duration as NIO's `TimeAmount`, for timers on an event loop.
    var timeAmount: TimeAmount {
        .nanoseconds(components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000)
    }
}

extension Date {
    func adding(_ duration: Duration) -> Date { addingTimeInterval(duration.seconds) }
}
