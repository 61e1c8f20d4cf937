import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Talks to the server's API as a client would: accounts, chats, sends (event streams are
/// ``StampReader``'s).
struct LoadClient {
    let http: HTTPClient
    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }

    func json(_ method: HTTPMethod, _ path: String, token: String? = nil, body: [String: Any]? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await http.execute(request, timeout: .seconds(60))
        let data = try await response.body.collect(upTo: 1 << 20)
        guard (200..<300).contains(response.status.code) else {
            throw BenchError("\(method) \(path) answered \(response.status): \(String(buffer: data))")
        }
        return (try? JSONSerialization.jsonObject(with: Data(data.readableBytesView)) as? [String: Any]) ?? [:]
    }

    func register(_ email: String) async throws -> String {
        let session = try await json(.POST, "/auth/register/", body: ["email": email, "password": "benchmark-password"])
        guard let token = session["access"] as? String else { throw BenchError("no access token") }
        return token
    }

    func createChat(token: String) async throws -> String {
        guard let id = try await json(.POST, "/api/chat/", token: token, body: ["title": "bench"])["id"] as? String else {
            throw BenchError("no chat id")
        }
        return id
    }

    func send(_ content: String, chat: String, token: String) async throws {
        _ = try await json(.POST, "/api/chat/\(chat)/send/", token: token, body: ["content": content])
    }
}

/// An open event stream being read on its event loop.
struct OpenStream: Sendable {
    let channel: any Channel
    let done: NIOLockedValueBox<Date?>

    var finishedAt: Date? { done.withLockedValue { $0 } }
    func close() { channel.close(promise: nil) }
}

/// Relay latencies, in nanoseconds.
final class LatencyRecorder: Sendable {
    private let samples = NIOLockedValueBox<[Int64]>([])

    init(capacity: Int) {
        samples.withLockedValue { $0.reserveCapacity(capacity) }
    }

    func record(_ batch: [Int64]) {
        samples.withLockedValue { $0.append(contentsOf: batch) }
    }

    var sorted: [Int64] { samples.withLockedValue { $0 }.sorted() }
}

extension Array where Element == Int64 {
    func percentile(_ p: Double) -> Double {
        guard !isEmpty else { return .nan }
        let index = Swift.min(count - 1, Swift.max(0, Int((Double(count) * p).rounded(.up)) - 1))
        return Double(self[index]) / 1_000_000
    }
}
