import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// `--v1 100,500`: what the server adds to a streamed `/v1/chat/completions`, against the same
/// request sent straight to the token source. At each rate, an open-loop schedule (a request every
/// 1/rate s, whatever the answers do) for `--v1-seconds`, first straight to the source (its
/// Messages API stream of `--tokens` deltas, sent without pause), then through the server (the
/// OpenAI stream it relays from the same source). Each request is timed from its send to its
/// first body byte and to its last; the server's CPU per request is read from `/proc`.
enum V1Bench {
    struct Timings {
        var firstByte: [Int64] = []
        var whole: [Int64] = []
        var failures = 0
    }

    static func run(rates: [Int], seconds: Int, tokens: Int, users: [String], deployment: Deployment, source: TokenSource,
                    http: HTTPClient) async throws {
        let model = "claude-sonnet-5-5"
        let question = #"[{"role":"user","content":"Say something short."}]"#
        let completion = ByteBuffer(string: #"{"model":"\#(model)","stream":true,"messages":\#(question)}"#)
        let messages = ByteBuffer(string: #"{"model":"\#(model)","stream":true,"max_tokens":1024,"messages":\#(question)}"#)
        let direct: @Sendable (Int) -> HTTPClientRequest = { _ in
            var request = HTTPClientRequest(url: source.baseURL + "/v1/messages")
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.headers.add(name: "x-api-key", value: TokenSource.apiKey)
            request.body = .bytes(messages)
            return request
        }
        let relayed: @Sendable (Int) -> HTTPClientRequest = { number in
            var request = HTTPClientRequest(url: deployment.runner.baseURL + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.headers.add(name: "authorization", value: "Bearer \(users[number % users.count])")
            request.body = .bytes(completion)
            return request
        }
        // Warm up both paths (connections, caches).
        _ = try await load(rate: 50, seconds: 1, http: http, request: direct)
        _ = try await load(rate: 50, seconds: 1, http: http, request: relayed)

        say("\n# /v1/chat/completions: streamed requests of \(tokens) deltas sent without pause, open loop, \(seconds) s per rate; limits off\n")
        say("| requests/s | direct p50 / p99 (last byte) | through the server p50 / p99 | added p50 / p99 | added to first byte p50 / p99 | server CPU per request | load generator CPU per request | failures |")
        say("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for rate in rates {
            let benchBefore = ProcessCPU.seconds(of: "self") ?? 0
            let alone = try await load(rate: rate, seconds: seconds, http: http, request: direct)
            let benchAlone = (ProcessCPU.seconds(of: "self") ?? 0) - benchBefore
            try await Task.sleep(for: .seconds(1))
            let before = CPUReading(deployment.servers, database: deployment.postgres != nil)
            let through = try await load(rate: rate, seconds: seconds, http: http, request: relayed)
            let cpu = CPUReading(deployment.servers, database: deployment.postgres != nil) - before
            let count = rate * seconds
            let directWhole: [Int64] = alone.whole.sorted(), directFirst: [Int64] = alone.firstByte.sorted()
            let whole: [Int64] = through.whole.sorted(), first: [Int64] = through.firstByte.sorted()
            let server: String = cpu.servers.map { microseconds($0, per: count) }.joined(separator: " + ")
            let database: String = deployment.postgres != nil ? " (+ PostgreSQL " + microseconds(cpu.database, per: count) + ")" : ""
            let direct50 = directWhole.percentile(0.5), direct99 = directWhole.percentile(0.99)
            let through50 = whole.percentile(0.5), through99 = whole.percentile(0.99)
            let first50 = first.percentile(0.5) - directFirst.percentile(0.5), first99 = first.percentile(0.99) - directFirst.percentile(0.99)
            let times = String(format: "%.2f / %.2f ms | %.2f / %.2f ms | **%.2f / %.2f ms** | %.2f / %.2f ms",
                               direct50, direct99, through50, through99, through50 - direct50, through99 - direct99, first50, first99)
            let generator = microseconds(cpu.bench, per: count) + " (alone " + microseconds(benchAlone, per: count) + ")"
            say("| \(rate) | \(times) | \(server)\(database) | \(generator) | \(alone.failures + through.failures) |")
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// Sends `request(n)` at `rate` a second for `seconds`, each on its own schedule, and times them.
    static func load(rate: Int, seconds: Int, http: HTTPClient, request: @escaping @Sendable (Int) -> HTTPClientRequest) async throws -> Timings {
        let count = rate * seconds
        let interval = Duration.nanoseconds(1_000_000_000 / Int64(rate))
        let start = ContinuousClock.now
        return await withTaskGroup(of: (Int64, Int64)?.self) { group in
            for number in 0..<count {
                try? await Task.sleep(until: start + interval * number)
                group.addTask {
                    let sent = ContinuousClock.now
                    do {
                        let response = try await http.execute(request(number), timeout: .seconds(30))
                        guard response.status == .ok else { return nil }
                        var first: ContinuousClock.Instant?
                        for try await _ in response.body where first == nil { first = ContinuousClock.now }
                        let end = ContinuousClock.now
                        return (nanoseconds(sent.duration(to: first ?? end)), nanoseconds(sent.duration(to: end)))
                    } catch {
                        return nil
                    }
                }
            }
            var timings = Timings()
            for await result in group {
                if let (first, whole) = result {
                    timings.firstByte.append(first)
                    timings.whole.append(whole)
                } else {
                    timings.failures += 1
                }
            }
            return timings
        }
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }
}
