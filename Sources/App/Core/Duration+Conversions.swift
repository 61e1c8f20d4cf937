import Foundation

extension Duration {
    /// The duration in seconds, for `Date` arithmetic.
    var seconds: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension Date {
    func adding(_ duration: Duration) -> Date { addingTimeInterval(duration.seconds) }
}
