import Foundation
import NIOConcurrencyHelpers

/// A rate limit: `limit` requests per `period`, in bursts of up to `limit`.
public struct RateLimitPolicy: Sendable, Equatable {
    public var name: String
    public var limit: Int
    public var period: TimeInterval

    public init(name: String, limit: Int, period: TimeInterval) {
        self.name = name
        self.limit = limit
        self.period = period
    }

    /// Parses `N/second`, `N/minute`, `N/hour` or `N/day`.
    public init?(name: String, _ raw: String) {
        let parts = raw.lowercased().replacingOccurrences(of: " ", with: "").split(separator: "/")
        guard parts.count == 2, let limit = Int(parts[0]), limit > 0 else { return nil }
        let periods: [String: TimeInterval] = ["second": 1, "s": 1, "minute": 60, "min": 60, "m": 60, "hour": 3600, "h": 3600, "day": 86_400, "d": 86_400]
        guard let period = periods[String(parts[1])] else { return nil }
        self.init(name: name, limit: limit, period: period)
    }

    /// The time one request "costs": a full bucket refills one request per interval.
    var emissionInterval: TimeInterval { period / Double(limit) }
}

/// What a limiter said about one request.
public struct RateLimitDecision: Sendable, Equatable {
    public var policy: RateLimitPolicy
    public var allowed: Bool
    /// Requests left right now.
    public var remaining: Int
    /// Seconds until the bucket is full again.
    public var resetAfter: TimeInterval
    /// Seconds until a request would be allowed (0 when allowed).
    public var retryAfter: TimeInterval
}

/// Where rate-limit state lives. ``InMemoryRateLimitStore`` keeps it in this process; a store on
/// shared storage (Redis, PostgreSQL) would let several instances share one limit.
public protocol RateLimitStore: Sendable {
    /// Counts one request for `key` under `policy` at `now`, unless it is over the limit.
    func acquire(_ key: String, policy: RateLimitPolicy, now: Date) async -> RateLimitDecision
}

/// GCRA (the generic cell rate algorithm, a token bucket kept as one number per key: the time
/// the bucket will be full again) in memory. Memory is bounded: a key whose bucket is full again is
/// the same as no key and is forgotten when room is needed; past `maxKeys` arbitrary keys are
/// dropped, so a flood of distinct clients cannot grow it without bound.
public final class InMemoryRateLimitStore: RateLimitStore {
    private let shards: [NIOLockedValueBox<[String: TimeInterval]>]
    private let maxKeysPerShard: Int

    public init(maxKeys: Int, shardCount: Int = 16) {
        shards = (0..<shardCount).map { _ in NIOLockedValueBox([:]) }
        maxKeysPerShard = max(1, maxKeys / shardCount)
    }

    public func acquire(_ key: String, policy: RateLimitPolicy, now: Date) async -> RateLimitDecision {
        let fullKey = policy.name + "|" + key
        let shard = shards[Int(UInt(bitPattern: fullKey.hashValue) % UInt(shards.count))]
        let time = now.timeIntervalSinceReferenceDate
        let interval = policy.emissionInterval
        return shard.withLockedValue { buckets in
            let fullAt = max(buckets[fullKey] ?? time, time)
            let nextFullAt = fullAt + interval
            let allowedFrom = nextFullAt - policy.period
            guard time >= allowedFrom else {
                return RateLimitDecision(policy: policy, allowed: false, remaining: 0,
                                         resetAfter: fullAt - time, retryAfter: allowedFrom - time)
            }
            if buckets[fullKey] == nil, buckets.count >= maxKeysPerShard {
                Self.makeRoom(in: &buckets, now: time, target: maxKeysPerShard * 9 / 10)
            }
            buckets[fullKey] = nextFullAt
            let remaining = Int(((policy.period - (nextFullAt - time)) / interval).rounded(.down))
            return RateLimitDecision(policy: policy, allowed: true, remaining: max(0, remaining),
                                     resetAfter: nextFullAt - time, retryAfter: 0)
        }
    }

    /// Keys held, over all shards.
    public var keyCount: Int {
        shards.reduce(0) { $0 + $1.withLockedValue { $0.count } }
    }

    private static func makeRoom(in buckets: inout [String: TimeInterval], now: TimeInterval, target: Int) {
        buckets = buckets.filter { $0.value > now }
        while buckets.count > target, let key = buckets.keys.first {
            buckets[key] = nil
        }
    }
}
