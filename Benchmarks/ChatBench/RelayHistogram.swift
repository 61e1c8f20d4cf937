import AsyncHTTPClient
import Foundation

/// The server's own measure of relay latency — from a delta reaching the server to its write on
/// a stream's socket — read from `chat_relay_latency_seconds` at `/metrics` (cumulative buckets).
/// Unlike the end-to-end figures it leaves out the load generator, which on a small machine is
/// often the slower half.
struct RelayHistogram {
    var buckets: [(le: Double, count: Double)]
    var count: Double

    static func fetch(_ client: LoadClient) async throws -> RelayHistogram {
        let response = try await client.http.execute(HTTPClientRequest(url: client.baseURL + "/metrics"), timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 16 << 20))
        var buckets: [(Double, Double)] = []
        var count = 0.0
        for line in text.split(separator: "\n") {
            if line.hasPrefix("chat_relay_latency_seconds_bucket{le=\"") {
                let parts = line.dropFirst("chat_relay_latency_seconds_bucket{le=\"".count).split(separator: "\"")
                guard parts.count == 2, let value = Double(parts[1].dropFirst(2).trimmingCharacters(in: .whitespaces)) else { continue }
                buckets.append((parts[0] == "+Inf" ? .infinity : Double(parts[0]) ?? .infinity, value))
            } else if line.hasPrefix("chat_relay_latency_seconds_count ") {
                count = Double(line.split(separator: " ").last ?? "0") ?? 0
            }
        }
        return RelayHistogram(buckets: buckets.sorted { $0.0 < $1.0 }, count: count)
    }

    /// What happened between `earlier` and this reading.
    func since(_ earlier: RelayHistogram) -> RelayHistogram {
        let before = Dictionary(earlier.buckets.map { ($0.le, $0.count) }, uniquingKeysWith: { $1 })
        return RelayHistogram(buckets: buckets.map { ($0.le, $0.count - (before[$0.le] ?? 0)) }, count: count - earlier.count)
    }

    /// The upper bound of the bucket holding quantile `q` (e.g. 0.99 → "≤ 2 ms").
    func quantileBound(_ q: Double) -> Double {
        guard count > 0 else { return 0 }
        return buckets.first { $0.count >= q * count }?.le ?? .infinity
    }

    /// The share of relays that took at most `seconds` (a bucket bound).
    func share(atMost seconds: Double) -> Double {
        guard count > 0, let bucket = buckets.first(where: { abs($0.le - seconds) < 1e-9 }) else { return 0 }
        return bucket.count / count
    }
}

func milliseconds(_ seconds: Double) -> String {
    seconds.isInfinite ? "> 30 s" : String(format: "%g ms", seconds * 1000)
}
