import Foundation

/// A bounded map whose entries expire, for what is kept in memory between requests (accounts,
/// verified tokens): an expired entry is never answered, every expired one is dropped each
/// `sweepInterval` (so memory follows what is in use, not everything ever seen), and when it holds
/// `capacity` entries and none has expired, it starts over empty. A value type: its owner locks it.
struct ExpiringCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private var entries: [Key: (value: Value, expiresAt: Date)] = [:]
    private var sweptAt = Date.distantPast
    let capacity: Int
    let sweepInterval: TimeInterval

    init(capacity: Int, sweepInterval: TimeInterval) {
        self.capacity = capacity
        self.sweepInterval = sweepInterval
    }

    /// The value kept for `key`, unless it has expired by `now`.
    func value(for key: Key, now: Date) -> Value? {
        guard let entry = entries[key], entry.expiresAt > now else { return nil }
        return entry.value
    }

    /// Keeps `value` for `key` until `expiresAt`, making room as described above.
    mutating func set(_ value: Value, for key: Key, expiresAt: Date, now: Date) {
        if entries.count >= capacity || now.timeIntervalSince(sweptAt) >= sweepInterval {
            entries = entries.filter { $0.value.expiresAt > now }
            sweptAt = now
            if entries.count >= capacity { entries.removeAll() }
        }
        entries[key] = (value, expiresAt)
    }

    mutating func remove(_ key: Key) { entries[key] = nil }
    mutating func removeAll() { entries.removeAll() }
    var count: Int { entries.count }
}
