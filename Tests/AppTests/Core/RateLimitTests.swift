@testable import App
import Foundation
import Testing
import VaporTesting

@Suite("Rate limits")
struct RateLimitTests {
    @Test("a burst up to the limit passes with the RateLimit headers; past it 429 with Retry-After; the bucket refills with time")
    func burstThenRefill() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_ANONYMOUS": "3/minute"]) { t in
            for expected in [2, 1, 0] {
                let response = try await t.send(.GET, "/auth/providers/", from: "203.0.113.5")
                #expect(response.status == .ok)
                #expect(response.header("RateLimit-Limit") == "3")
                #expect(response.header("RateLimit-Remaining") == String(expected))
                #expect(response.header("RateLimit-Reset") != nil)
            }
            let refused = try await t.send(.GET, "/auth/providers/", from: "203.0.113.5")
            #expect(refused.status == .tooManyRequests)
            let problem = try refused.problem()
            #expect(problem.status == 429)
            #expect(problem.title == "Too many requests")
            #expect(refused.header("Retry-After") == "20")
            #expect(refused.header("RateLimit-Limit") == "3")
            #expect(refused.header("RateLimit-Remaining") == "0")
            #expect(refused.header("RateLimit-Reset") == "60")

            // Another client is not affected.
            #expect(try await t.send(.GET, "/auth/providers/", from: "203.0.113.6").status == .ok)

            // 3 per minute refill one every 20 s.
            t.clock.advance(by: 19)
            #expect(try await t.send(.GET, "/auth/providers/", from: "203.0.113.5").status == .tooManyRequests)
            t.clock.advance(by: 1)
            let refilled = try await t.send(.GET, "/auth/providers/", from: "203.0.113.5")
            #expect(refilled.status == .ok)
            #expect(refilled.header("RateLimit-Remaining") == "0")
            t.clock.advance(by: 60)
            #expect(try await t.send(.GET, "/auth/providers/", from: "203.0.113.5").header("RateLimit-Remaining") == "2")
        }
    }

    @Test("signed-in calls are limited per user, whatever the address; others per address", arguments: TestDatabase.all)
    func perUserAndPerAddress(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["RATE_LIMIT_USER": "2/minute", "RATE_LIMIT_ANONYMOUS": "5/minute"]) { t in
            let alice = try await t.register()
            let bob = try await t.register()
            #expect(try await t.send(.GET, "/auth/me/", from: "198.51.100.1", token: alice.access).status == .ok)
            let second = try await t.send(.GET, "/api/chat/", from: "198.51.100.2", token: alice.access)
            #expect(second.status == .ok)
            #expect(second.header("RateLimit-Limit") == "2")
            #expect(second.header("RateLimit-Remaining") == "0")
            let third = try await t.send(.GET, "/auth/me/", from: "198.51.100.3", token: alice.access)
            #expect(third.status == .tooManyRequests)
            #expect(try third.problem().status == 429)

            // Bob, and anonymous callers on Alice's address, have their own buckets.
            #expect(try await t.send(.GET, "/auth/me/", from: "198.51.100.1", token: bob.access).status == .ok)
            let anonymous = try await t.send(.GET, "/auth/providers/", from: "198.51.100.1")
            #expect(anonymous.status == .ok)
            #expect(anonymous.header("RateLimit-Limit") == "5")
        }
    }

    @Test("register, login and refresh share a tight per-address limit")
    func authLimits() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_AUTH": "3/minute"]) { t in
            let email = uniqueEmail()
            let registered = try await t.send(.POST, "/auth/register/", from: "192.0.2.10", json: ["email": email, "password": testPassword])
            #expect(registered.status == .created)
            #expect(registered.header("RateLimit-Limit") == "3")
            #expect(try await t.send(.POST, "/auth/login/", from: "192.0.2.10", json: ["email": email, "password": testPassword]).status == .ok)
            #expect(try await t.send(.POST, "/auth/refresh/", from: "192.0.2.10", json: ["refresh": "x"]).status == .unauthorized)
            let blocked = try await t.send(.POST, "/auth/login/", from: "192.0.2.10", json: ["email": email, "password": testPassword])
            #expect(blocked.status == .tooManyRequests)
            #expect(blocked.header("Retry-After") != nil)
            // Another address is not affected.
            #expect(try await t.send(.POST, "/auth/login/", from: "192.0.2.11", json: ["email": email, "password": testPassword]).status == .ok)
        }
    }

    @Test("health checks and metrics scrapes are never rate limited")
    func probesUnlimited() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_ANONYMOUS": "1/minute"]) { t in
            for _ in 0..<5 {
                for path in ["/healthz", "/readyz", "/metrics", "/healthz/"] {
                    let response = try await t.send(.GET, path, from: "127.0.0.1")
                    #expect(response.status == .ok, "\(path)")
                    #expect(response.header("RateLimit-Limit") == nil, "\(path)")
                }
            }
            // The anonymous budget of that address is untouched by them.
            #expect(try await t.send(.GET, "/auth/providers/", from: "127.0.0.1").status == .ok)
            #expect(try await t.send(.GET, "/auth/providers/", from: "127.0.0.1").status == .tooManyRequests)
        }
    }

    @Test("IPv6 clients are counted by their /64; IPv4 clients by their address")
    func ipv6Networks() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_ANONYMOUS": "2/minute"]) { t in
            let first = try await t.send(.GET, "/auth/providers/", from: "2001:db8:1:2::1")
            #expect(first.status == .ok)
            #expect(try await t.send(.GET, "/auth/providers/", from: "2001:db8:1:2:ffff:ffff:ffff:fffe").status == .ok)
            #expect(try await t.send(.GET, "/auth/providers/", from: "2001:db8:1:2:abcd::7").status == .tooManyRequests,
                    "a third address in the same /64 shares its budget")
            #expect(try await t.send(.GET, "/auth/providers/", from: "2001:db8:1:3::1").status == .ok, "the next /64 is another client")
            #expect(try await t.send(.GET, "/auth/providers/", from: "192.0.2.1").status == .ok)
            #expect(try await t.send(.GET, "/auth/providers/", from: "192.0.2.2").status == .ok)
            #expect(IPRange.clientKey(of: "2001:db8:1:2:abcd::7") == "2001:db8:1:2::/64")
            #expect(IPRange.clientKey(of: "::ffff:192.0.2.9") == "192.0.2.9", "IPv4-mapped addresses are IPv4 clients")
            #expect(IPRange.clientKey(of: "192.0.2.9") == "192.0.2.9")
            // A limiter with no room left counts clients by their network instead.
            #expect(IPRange.networkKey(of: "2001:db8:1:2:abcd::7") == "2001:db8:1::/48")
            #expect(IPRange.networkKey(of: "192.0.2.9") == "192.0.2.0/24")
        }
    }

    @Test("replies started are limited per user; the refused message is not stored", arguments: TestDatabase.all)
    func replyLimit(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["RATE_LIMIT_REPLIES": "2/minute"]) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "first")
            let firstReply = try #require(chat.messages.last?.id)
            _ = try await t.waitForReply(firstReply, chat: chat.id, token: session.access)
            let second = try await t.sendMessage("second", chat: chat.id, token: session.access)
            _ = try await t.waitForReply(second.assistant.id, chat: chat.id, token: session.access)
            let before = try await t.messageCount()
            let refused = try await t.send(.POST, "/api/chat/\(chat.id)/send/", json: ["content": "third"], token: session.access)
            #expect(refused.status == .tooManyRequests)
            let problem = try refused.problem()
            #expect(problem.title == "Reply limit reached")
            #expect(refused.headers.first(name: "Retry-After") == "30")
            #expect(try await t.messageCount() == before)
            // A chat without a first message starts no reply and is allowed.
            let empty = try await t.send(.POST, "/api/chat/", json: ["title": "later"], token: session.access)
            #expect(empty.status == .created)
            let withMessage = try await t.send(.POST, "/api/chat/", json: ["content": "again"], token: session.access)
            #expect(withMessage.status == .tooManyRequests)
            t.clock.advance(by: 30)
            #expect(try await t.send(.POST, "/api/chat/\(chat.id)/send/", json: ["content": "later"], token: session.access).status == .accepted)
        }
    }

    @Test("X-Forwarded-For is believed from trusted proxies only")
    func trustedProxies() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_ANONYMOUS": "1/minute", "TRUSTED_PROXIES": "10.0.0.0/8, ::1"]) { t in
            // Through the proxy: keyed by the client it names (the nearest untrusted address).
            do {
                let response = try await t.send(.GET, "/auth/providers/", from: "10.0.0.1", headers: ["X-Forwarded-For": "198.51.100.7"])
                #expect(response.status == .ok)
            }
            do {
                let response = try await t.send(.GET, "/auth/providers/", from: "10.0.0.2", headers: ["X-Forwarded-For": "198.51.100.7"])
                #expect(response.status == .tooManyRequests)
            }
            do {
                let response = try await t.send(.GET, "/auth/providers/", from: "10.0.0.1", headers: ["X-Forwarded-For": "198.51.100.8"])
                #expect(response.status == .ok)
            }
            // A client cannot escape by prepending its own guess: the proxy appends the real address.
            do {
                let response = try await t.send(.GET, "/auth/providers/", from: "10.0.0.1", headers: ["X-Forwarded-For": "1.2.3.4, 198.51.100.8"])
                #expect(response.status == .tooManyRequests)
            }
            do {
                let response = try await t.send(.GET, "/auth/providers/", from: "::1", headers: ["X-Forwarded-For": "198.51.100.9, 10.0.0.5"])
                #expect(response.status == .ok)
            }
            do {
                let response = try await t.send(.GET, "/auth/providers/", from: "10.0.0.3", headers: ["X-Forwarded-For": "198.51.100.9"])
                #expect(response.status == .tooManyRequests)
            }

            // Directly from an untrusted peer the header is ignored: the peer is the key.
            do {
                let response = try await t.send(.GET, "/auth/providers/", from: "192.0.2.1", headers: ["X-Forwarded-For": "198.51.100.20"])
                #expect(response.status == .ok)
            }
            do {
                let response = try await t.send(.GET, "/auth/providers/", from: "192.0.2.1", headers: ["X-Forwarded-For": "198.51.100.21"])
                #expect(response.status == .tooManyRequests)
            }
        }
    }

    @Test("RATE_LIMIT_ENABLED=false turns the limits off")
    func disabled() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_ENABLED": "false", "RATE_LIMIT_ANONYMOUS": "1/minute"]) { t in
            for _ in 0..<3 {
                let response = try await t.send(.GET, "/auth/providers/", from: "203.0.113.9")
                #expect(response.status == .ok)
                #expect(response.header("RateLimit-Limit") == nil)
            }
        }
    }

    @Test("limits read from the settings; a malformed one stops start-up naming the key")
    func policySettings() throws {
        #expect(RateLimitPolicy(name: "x", "120/minute") == RateLimitPolicy(name: "x", limit: 120, period: 60))
        #expect(RateLimitPolicy(name: "x", "10 / second") == RateLimitPolicy(name: "x", limit: 10, period: 1))
        #expect(RateLimitPolicy(name: "x", "200/hour")?.period == 3600)
        #expect(RateLimitPolicy(name: "x", "1000/day")?.period == 86_400)
        for bad in ["", "0/minute", "-1/minute", "ten/minute", "10/fortnight", "10"] {
            #expect(RateLimitPolicy(name: "x", bad) == nil, "\(bad)")
        }
        var environment = ["SECRET_KEY": TestSettings.secretKey, "ALLOWED_HOSTS": "localhost", "RATE_LIMIT_USER": "lots"]
        #expect { try Settings(environment: environment) } throws: { error in
            "\(error)".contains("RATE_LIMIT_USER")
        }
        environment["RATE_LIMIT_USER"] = "5/second"
        environment["TRUSTED_PROXIES"] = "10.0.0.0/33"
        #expect { try Settings(environment: environment) } throws: { error in
            "\(error)".contains("TRUSTED_PROXIES")
        }
    }
}

@Suite("Rate limit store")
struct RateLimitStoreTests {
    let start = Date(timeIntervalSinceReferenceDate: 1_000_000)

    func key(_ client: String, _ policy: String = "p") -> RateLimitKey { RateLimitKey(policy: policy, client: client) }

    @Test("GCRA: a full bucket allows a burst of the limit, then one request per interval")
    func gcra() async {
        let store = InMemoryRateLimitStore(maxKeys: 100)
        let policy = RateLimitPolicy(name: "p", limit: 10, period: 60)
        for remaining in (0..<10).reversed() {
            let decision = store.acquire(key("k"), policy: policy, now: start)
            #expect(decision.allowed)
            #expect(decision.remaining == remaining)
        }
        let refused = store.acquire(key("k"), policy: policy, now: start)
        #expect(!refused.allowed)
        #expect(refused.retryAfter == 6)
        #expect(refused.resetAfter == 60)
        #expect(!store.acquire(key("k"), policy: policy, now: start.addingTimeInterval(5.9)).allowed)
        #expect(store.acquire(key("k"), policy: policy, now: start.addingTimeInterval(6)).allowed)
        // A refused request costs nothing: after a full period the whole burst is back.
        let later = start.addingTimeInterval(66)
        #expect(store.acquire(key("k"), policy: policy, now: later).remaining == 9)
        // Policies do not share buckets even for the same client.
        #expect(store.acquire(key("k", "q"), policy: RateLimitPolicy(name: "q", limit: 1, period: 60), now: start).allowed)
    }

    @Test("keys are a fixed 16 bytes whatever the client sent, and differ by policy and client")
    func fixedSizeKeys() {
        let huge = String(repeating: "x", count: 1 << 20)
        #expect(MemoryLayout<RateLimitKey>.size == 16)
        #expect(RateLimitKey(policy: "p", client: huge).bytes.count == 16)
        #expect(RateLimitKey(policy: "p", client: huge) == RateLimitKey(policy: "p", client: huge))
        #expect(RateLimitKey(policy: "p", client: "a") != RateLimitKey(policy: "q", client: "a"))
        #expect(RateLimitKey(policy: "p", client: "a") != RateLimitKey(policy: "p", client: "b"))
    }

    @Test("memory stays bounded under a flood of distinct keys; a key still counting is never dropped, and nothing passes uncounted")
    func memoryBound() async {
        let store = InMemoryRateLimitStore(maxKeys: 1_600, shardCount: 16)
        let policy = RateLimitPolicy(name: "p", limit: 1, period: 60)
        // An active client, limited now.
        #expect(store.acquire(key("active"), policy: policy, now: start).allowed)
        var allowed = 0
        for i in 0..<50_000 {
            if store.acquire(key("flood-\(i)"), policy: policy, now: start.addingTimeInterval(Double(i) / 100_000)).allowed { allowed += 1 }
        }
        #expect(store.keyCount <= 1_600)
        #expect(store.overflowed > 0, "new keys past the bound were counted in the overflow buckets")
        #expect(allowed <= 1_600 + InMemoryRateLimitStore.overflowSlots, "never let through uncounted: \(allowed)")
        // The active client is still limited: the flood did not evict it.
        #expect(!store.acquire(key("active"), policy: policy, now: start.addingTimeInterval(1)).allowed)
        // Long after, everything is idle and makes room without growing.
        let later = start.addingTimeInterval(3600)
        for i in 0..<500 {
            _ = store.acquire(key("late-\(i)"), policy: policy, now: later)
        }
        #expect(store.keyCount <= 1_600)
        #expect(store.acquire(key("late-1"), policy: policy, now: later).allowed == false)
    }

    @Test("a full table counts a new client in its coarser key (its network, its account) rather than in none")
    func coarserKeyWhenFull() async {
        let store = InMemoryRateLimitStore(maxKeys: 16, shardCount: 16)
        let policy = RateLimitPolicy(name: "p", limit: 2, period: 60)
        // Fill every shard with clients still counting.
        var filler = 0
        while store.keyCount < 16 {
            _ = store.acquire(key("filler-\(filler)"), policy: policy, now: start)
            filler += 1
        }
        // Clients of one network, none of which finds room: they share their network's budget.
        let network = key("coarse:203.0.113.0/24")
        var answers: [Bool] = []
        for n in 0..<6 {
            let own = key("203.0.113.\(n)")
            answers.append(store.acquire([own, network], policy: policy, now: start).allowed)
        }
        let counted = answers.filter { $0 }.count
        #expect(counted <= 2, "one network's budget, or the overflow's: \(answers)")
        #expect(answers.last == false)
    }

    @Test("a refund gives one request back; a bucket refunded to full is forgotten")
    func refund() async {
        let store = InMemoryRateLimitStore(maxKeys: 100)
        let policy = RateLimitPolicy(name: "p", limit: 2, period: 60)
        let first = store.acquire(key("k"), policy: policy, now: start)
        #expect(first.counted == key("k"))
        _ = store.acquire(key("k"), policy: policy, now: start)
        #expect(!store.acquire(key("k"), policy: policy, now: start).allowed)
        store.refund(key("k"), policy: policy, now: start)
        #expect(store.acquire(key("k"), policy: policy, now: start).allowed)
        store.refund(key("k"), policy: policy, now: start)
        store.refund(key("k"), policy: policy, now: start)
        #expect(store.fullAt(key("k")) == nil)
    }
}
