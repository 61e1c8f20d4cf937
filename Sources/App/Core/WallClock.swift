import Foundation

/// The current time, injected so tests can move it instead of sleeping.
public protocol WallClock: Sendable {
    func now() -> Date
}

/// The system's clock.
public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

extension Date {
    /// This time at the precision the databases keep (microseconds, as SQLite's driver reads them
    /// back and PostgreSQL stores them), so that a value written and read back compares equal.
    public var atDatabasePrecision: Date {
        Date(timeIntervalSinceReferenceDate: (timeIntervalSinceReferenceDate * 1e6).rounded() / 1e6)
    }
}
