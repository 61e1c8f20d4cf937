import AnthropicEmulator
import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Providers

/// Talks to the server as many clients would: accounts, chats, sends, and event streams.
struct LoadClient {
    let http: HTTPClient
    let baseURL: String

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

    /// Opens a chat's event stream; returns once the replay has arrived.
    func openStream(chat: String, token: String, recorder: LatencyRecorder?) async throws -> OpenStream {
        var request = HTTPClientRequest(url: baseURL + "/api/chat/\(chat)/messages/")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await http.execute(request, timeout: .seconds(120))
        guard response.status == .ok else { throw BenchError("stream answered \(response.status)") }
        var iterator = response.body.makeAsyncIterator()
        guard try await iterator.next() != nil else { throw BenchError("the stream closed at once") }  // the replay
        let done = NIOLockedValueBox<Date?>(nil)
        let reader = Task {
            var parser = ServerSentEventParser()
            do {
                while let chunk = try await iterator.next() {
                    let received = AnthropicEmulator.wallClockNanoseconds()
                    chunk.withUnsafeReadableBytes { bytes in
                        parser.feed(bytes) { event in
                            if event.type == "delta", let stamp = Self.stamp(in: event.data) {
                                recorder?.record(received - stamp)
                            } else if event.type == "done" {
                                done.withLockedValue { $0 = Date() }
                            }
                        }
                    }
                }
            } catch {}
        }
        return OpenStream(reader: reader, done: done)
    }

    /// Streams a reply straight from the emulator, as the server would, reading its stamped deltas:
    /// the baseline of what the emulator and this client cost without the server in between.
    static func direct(emulator: String, key: String, http: HTTPClient, recorder: LatencyRecorder) async throws -> Date {
        var request = HTTPClientRequest(url: emulator + "/v1/messages")
        request.method = .POST
        request.headers.add(name: "x-api-key", value: key)
        request.headers.add(name: "anthropic-version", value: "2023-06-01")
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"model":"claude-sonnet-5-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"How fast is this?"}]}"#))
        let response = try await http.execute(request, timeout: .seconds(120))
        var parser = ServerSentEventParser()
        for try await chunk in response.body {
            let received = AnthropicEmulator.wallClockNanoseconds()
            chunk.withUnsafeReadableBytes { bytes in
                parser.feed(bytes) { event in
                    if event.type == "content_block_delta", let stamp = stamp(in: event.data) { recorder.record(received - stamp) }
                }
            }
        }
        return Date()
    }

    /// The send time the emulator put in a delta's text: `t<nanoseconds>;`.
    static func stamp(in data: String) -> Int64? {
        guard let start = data.range(of: "\"text\":\"t") else { return nil }
        var value: Int64 = 0
        for byte in data.utf8[start.upperBound...] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        return value
    }
}

/// An open event stream being read in the background.
struct OpenStream {
    let reader: Task<Void, Never>
    let done: NIOLockedValueBox<Date?>

    var finishedAt: Date? { done.withLockedValue { $0 } }
    func close() { reader.cancel() }
}

/// Relay latencies, in nanoseconds.
final class LatencyRecorder: Sendable {
    private let samples = NIOLockedValueBox<[Int64]>([])

    init(capacity: Int) {
        samples.withLockedValue { $0.reserveCapacity(capacity) }
    }

    func record(_ nanoseconds: Int64) {
        samples.withLockedValue { $0.append(nanoseconds) }
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
