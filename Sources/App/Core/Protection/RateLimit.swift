import Crypto
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

    /// The same limit under another name: a bucket of its own.
    func named(_ name: String) -> RateLimitPolicy { RateLimitPolicy(name: name, limit: limit, period: period) }

    /// The time one request "costs": a full bucket refills one request per interval.
    var emissionInterval: TimeInterval { period / Double(limit) }

    /// GCRA: what a request at `now` meets in a bucket that is full again at `fullAt` (nil: full now).
    /// Counting it would make the bucket full again at ``RateLimitDecision/nextFullAt``.
    func decide(fullAt stored: TimeInterval?, now: TimeInterval) -> RateLimitDecision {
        let fullAt = max(stored ?? now, now)
        let nextFullAt = fullAt + emissionInterval
        let allowedFrom = nextFullAt - period
        guard now >= allowedFrom else {
            return RateLimitDecision(policy: self, allowed: false, remaining: 0, resetAfter: fullAt - now,
                                     retryAfter: allowedFrom - now, nextFullAt: fullAt)
        }
        let remaining = Int(((period - (nextFullAt - now)) / emissionInterval).rounded(.down))
        return RateLimitDecision(policy: self, allowed: true, remaining: max(0, remaining), resetAfter: nextFullAt - now,
                                 retryAfter: 0, nextFullAt: nextFullAt)
    }

    /// How much of the bucket is spent at `now`, without counting anything: `spent == 0` means no
    /// recent request at all.
    func spent(fullAt stored: TimeInterval?, now: TimeInterval) -> Int {
        guard let stored, stored > now else { return 0 }
        return Int(((stored - now) / emissionInterval).rounded(.up))
    }
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
    /// When the bucket is full again once this request is counted (reference-date seconds).
    var nextFullAt: TimeInterval
    /// The bucket the request was counted in (nil when not counted): to give it back (``RateLimitStore/refund(_:policy:now:)``).
    var counted: RateLimitKey? = nil
}

/// The bucket of one client under one policy: a hash of both, 16 bytes whatever the client sent,
/// so that a key costs the same memory whether it is a user id or a megabyte of "email".
public struct RateLimitKey: Hashable, Sendable {
    let high: UInt64
    let low: UInt64

    init(policy: String, client: String) {
        var hasher = SHA256()
        hasher.update(data: Data(policy.utf8))
        hasher.update(data: [0])
        hasher.update(data: Data(client.utf8))
        let digest = Array(hasher.finalize())
        high = digest[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = digest[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The 16 bytes, big-endian, for stores that keep them outside this process.
    var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }
}

/// Where rate-limit state lives. ``InMemoryRateLimitStore`` keeps it in this process; a store on
/// shared storage lets several instances share one limit.
public protocol RateLimitStore: Sendable {
    /// Counts one request at `now` under `policy` — in the first of `keys` (the client's own bucket)
    /// when the store has room for it, else in the next (a coarser one: the account, the network),
    /// and never in none: a store that is full counts in a shared overflow bucket rather than let a
    /// request through uncounted — unless it is over the limit.
    func acquire(_ keys: [RateLimitKey], policy: RateLimitPolicy, now: Date) async throws -> RateLimitDecision
    /// When `key`'s bucket is full again (reference-date seconds); nil when it is full. Counts nothing.
    func fullAt(_ key: RateLimitKey) async throws -> TimeInterval?
    /// Gives back one request counted in `key` (a sign-in that turned out right costs nothing).
    func refund(_ key: RateLimitKey, policy: RateLimitPolicy, now: Date) async throws
}

/// GCRA (the generic cell rate algorithm, a token bucket kept as one number per key: the time
/// the bucket will be full again) in memory. Memory is bounded (`maxKeys`, 16 bytes of key and 8
/// of state each, in 16 locked shards): a key whose bucket is full again is the same as no key, and
/// idle keys are forgotten when room is needed. A key that is still counting is never dropped;
/// when every key held is counting, a new key is counted in its coarser key (the caller's
/// fallback), and past that in one of ``overflowSlots`` buckets that every such key hashes into —
/// stricter for the clients that share one, never open (``overflowed`` tells how often).
public final class InMemoryRateLimitStore: RateLimitStore {
    private let shards: [NIOLockedValueBox<[RateLimitKey: TimeInterval]>]
    private let maxKeysPerShard: Int
    private let overflow: NIOLockedValueBox<[TimeInterval]>
    private let overflowCount = NIOLockedValueBox(0)
    static let overflowSlots = 4096

    public init(maxKeys: Int, shardCount: Int = 16) {
        shards = (0..<shardCount).map { _ in NIOLockedValueBox([:]) }
        maxKeysPerShard = max(1, maxKeys / shardCount)
        overflow = NIOLockedValueBox(Array(repeating: 0, count: Self.overflowSlots))
    }

    private func shard(_ key: RateLimitKey) -> NIOLockedValueBox<[RateLimitKey: TimeInterval]> {
        shards[Int(key.low % UInt64(shards.count))]
    }

    public func acquire(_ keys: [RateLimitKey], policy: RateLimitPolicy, now: Date) -> RateLimitDecision {
        let time = now.timeIntervalSinceReferenceDate
        for key in keys {
            let decision = shard(key).withLockedValue { buckets -> RateLimitDecision? in
                if buckets[key] == nil, buckets.count >= maxKeysPerShard {
                    buckets = buckets.filter { $0.value > time }
                    guard buckets.count < maxKeysPerShard else { return nil }
                }
                var decision = policy.decide(fullAt: buckets[key], now: time)
                if decision.allowed {
                    buckets[key] = decision.nextFullAt
                    decision.counted = key
                }
                return decision
            }
            if let decision { return decision }
        }
        overflowCount.withLockedValue { $0 += 1 }
        let slot = Int((keys.last?.high ?? 0) % UInt64(Self.overflowSlots))
        return overflow.withLockedValue { slots in
            let decision = policy.decide(fullAt: slots[slot] > time ? slots[slot] : nil, now: time)
            if decision.allowed { slots[slot] = decision.nextFullAt }
            return decision
        }
    }

    public func acquire(_ key: RateLimitKey, policy: RateLimitPolicy, now: Date) -> RateLimitDecision {
        acquire([key], policy: policy, now: now)
    }

    public func fullAt(_ key: RateLimitKey) -> TimeInterval? {
        shard(key).withLockedValue { $0[key] }
    }

    public func refund(_ key: RateLimitKey, policy: RateLimitPolicy, now: Date) {
        let time = now.timeIntervalSinceReferenceDate
        shard(key).withLockedValue { buckets in
            guard let fullAt = buckets[key] else { return }
            let refunded = fullAt - policy.emissionInterval
            buckets[key] = refunded > time ? refunded : nil
        }
    }

    /// Keys held, over all shards.
    public var keyCount: Int {
        shards.reduce(0) { $0 + $1.withLockedValue { $0.count } }
    }

    /// Requests counted in an overflow bucket because every key held (their own and their coarser
    /// one) was still counting.
    public var overflowed: Int { overflowCount.withLockedValue { $0 } }
}
