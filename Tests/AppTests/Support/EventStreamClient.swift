import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Providers
import Testing

/// A client of the chat event stream over a real connection: it reads and parses events in the
/// background, and lets a test wait for the events it expects. `close()` drops the connection.
final class EventStreamClient: Sendable {
    typealias Event = ServerSentEventParser.Event

    private struct State {
        var events: [Event] = []
        var comments = 0
        var lastComment: String?
        var ended = false
        var failure: String?
    }

    private let state = NIOLockedValueBox(State())
    private let reader = NIOLockedValueBox<Task<Void, Never>?>(nil)
    private let unread = NIOLockedValueBox<HTTPClientResponse.Body?>(nil)
    let status: HTTPResponseStatus
    let headers: HTTPHeaders

    /// Opens `GET path` on the live server at `baseURL` with the token (and `Last-Event-ID`); or
    /// `method` with a `json` body.
    static func open(_ baseURL: String, _ path: String, token: String?, lastEventID: String? = nil,
                     readBody: Bool = true, method: HTTPMethod = .GET, json: [String: Any]? = nil) async throws -> EventStreamClient {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: json)))
        }
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let lastEventID { request.headers.add(name: "Last-Event-ID", value: lastEventID) }
        let response = try await client.execute(request, timeout: .seconds(10))
        let client = EventStreamClient(status: response.status, headers: response.headers)
        if readBody { client.startReading(response.body) } else { client.unread.withLockedValue { $0 = response.body } }
        return client
    }

    /// Streams hold their connections: a client of their own, allowed many per host, so that
    /// dozens of open streams leave `HTTPClient.shared` (8 per host) free for other requests.
    private static let client = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: .init(connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 500))
    )

    private init(status: HTTPResponseStatus, headers: HTTPHeaders) {
        self.status = status
        self.headers = headers
    }

    private func startReading(_ body: HTTPClientResponse.Body) {
        let task = Task { [state] in
            var parser = ServerSentEventParser()
            // The start of a line a chunk ended in the middle of, kept while it may be a comment
            // (nil once it cannot: a data line may run to megabytes).
            var unfinished: String? = ""
            do {
                for try await chunk in body {
                    var pieces = String(buffer: chunk).components(separatedBy: "\n")
                    let tail = pieces.removeLast()
                    var lines: [String] = []
                    if let first = pieces.first {
                        if let unfinished { lines.append(unfinished + first) }
                        lines.append(contentsOf: pieces.dropFirst())
                        unfinished = tail
                    } else {
                        unfinished = unfinished.map { $0 + tail }
                    }
                    if let start = unfinished, !start.isEmpty, !start.hasPrefix(":") || start.utf8.count > 1024 { unfinished = nil }
                    let comments = lines.filter { $0.hasPrefix(":") }
                    var parsed: [Event] = []
                    parser.feed(Array(chunk.readableBytesView)) { parsed.append($0) }
                    state.withLockedValue {
                        $0.events.append(contentsOf: parsed)
                        $0.comments += comments.count
                        if let last = comments.last { $0.lastComment = last }
                    }
                }
                state.withLockedValue { $0.ended = true }
            } catch {
                state.withLockedValue {
                    $0.ended = true
                    $0.failure = String(describing: error)
                }
            }
        }
        reader.withLockedValue { $0 = task }
    }

    /// Starts reading a stream opened with `readBody: false`.
    func readFromNow() {
        guard let body = unread.withLockedValue({ body in defer { body = nil }; return body }) else { return }
        startReading(body)
    }

    var events: [Event] { state.withLockedValue { $0.events } }
    /// The last comment line the stream carried (a keep-alive, or why it ended).
    var lastComment: String? { state.withLockedValue { $0.lastComment } }
    var keepAliveCount: Int { state.withLockedValue { $0.comments } }
    var hasEnded: Bool { state.withLockedValue { $0.ended } }

    /// Waits until `condition` holds for the events so far; fails the test after `timeout`.
    @discardableResult
    func waitFor(_ what: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
                 _ condition: ([Event]) -> Bool) async throws -> [Event] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let events = self.events
            if condition(events) { return events }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("timed out waiting for \(what); got \(events.map { "\($0.type) \($0.id ?? "-")" })", sourceLocation: sourceLocation)
        throw CancellationError()
    }

    /// Waits for the `done` event of the reply with `messageID`.
    @discardableResult
    func waitForDone(_ messageID: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Event] {
        try await waitFor("done of \(messageID)", sourceLocation: sourceLocation) { events in
            events.contains { $0.type == "done" && $0.data.contains(messageID) }
        }
    }

    func waitForEnd(timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !hasEnded, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(hasEnded, "the stream did not end")
    }

    func close() {
        reader.withLockedValue { $0 }?.cancel()
    }
}

extension ServerSentEventParser.Event {
    /// The `data` as a JSON object.
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]) ?? [:]
    }
}

extension Array where Element == ServerSentEventParser.Event {
    /// The text of the reply `messageID` as its events deliver it: the `message` event's text, then each delta.
    func replyText(_ messageID: String) -> String { delivered(messageID, pieces: "delta", from: "content") }

    /// The reasoning of the reply `messageID` as its events deliver it: the `message` event's, then each `reasoning` event's.
    func reasoningText(_ messageID: String) -> String { delivered(messageID, pieces: "reasoning", from: "reasoning") }

    private func delivered(_ messageID: String, pieces type: String, from field: String) -> String {
        var text = ""
        for event in self {
            let json = event.json
            if event.type == "message", json["id"] as? String == messageID { text = json[field] as? String ?? "" }
            if event.type == type, json["message_id"] as? String == messageID { text += json["text"] as? String ?? "" }
        }
        return text
    }
}
