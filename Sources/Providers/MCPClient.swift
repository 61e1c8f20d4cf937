import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// A client of one MCP server over Streamable HTTP (protocol revisions 2025-03-26 and later):
/// JSON-RPC requests POSTed to the server's one endpoint, each answered with a JSON body or a
/// `text/event-stream` that carries the answer (after any notifications, which are read as they
/// come and set aside). Sessions are kept apart by a key the caller gives (a user's id: whatever a
/// server keeps per session is never shared between users; `""` for listing tools), each begun on
/// first use (`initialize`, then `notifications/initialized`), its `Mcp-Session-Id` sent with every
/// request, and begun again once when the server forgets it (404); the least recently begun go
/// past ``maxSessions``. A call whose task is cancelled closes its HTTP request
/// and tells the server (`notifications/cancelled`). Every response is read up to
/// `maxResponseBytes`.
///
/// Why not the MCP Swift SDK's client: on Linux its HTTP transport reads each response whole (no
/// streamed answers), its request continuations do not end on task cancellation (a timed-out call
/// would wait for the server), and one transport error ends its message loop for good. The part
/// of the protocol a tool-calling client needs is the four messages here.
public final class MCPClient: Sendable {
    public let url: String
    private let token: String?
    private let http: HTTPClient
    private let maxResponseBytes: Int

    /// The protocol revision asked for; the server may answer with an older one it speaks.
    public static let protocolVersion = "2025-06-18"
    /// Tools a server may list (more are ignored), and a description's most bytes (the rest cut).
    public static let maxTools = 256
    public static let maxDescriptionBytes = 4096

    private struct Session: Sendable {
        var id: String?
        var protocolVersion: String
    }

    /// The sessions begun, by key, and their keys in the order they were begun.
    private struct Sessions {
        var byKey: [String: Session] = [:]
        var order: [String] = []
    }

    private let sessions = NIOLockedValueBox(Sessions())
    /// Sessions kept at once; past it the oldest is ended.
    public static let maxSessions = 1000
    private let lastRequestID = NIOLockedValueBox(0)

    public init(url: String, token: String?, http: HTTPClient, maxResponseBytes: Int) {
        self.url = url
        self.token = token
        self.http = http
        self.maxResponseBytes = maxResponseBytes
    }

    /// Ends every session (best effort, within a second in all).
    public func close() async {
        let open = sessions.withLockedValue { sessions in
            defer { sessions = Sessions() }
            return Array(sessions.byKey.values)
        }
        _ = try? await Self.within(.seconds(1)) { [self] in
            await withTaskGroup(of: Void.self) { group in
                for session in open { group.addTask { await self.end(session) } }
            }
            return true
        }
    }

    /// Tells the server a session is over (`DELETE`), briefly.
    private func end(_ session: Session) async {
        guard session.id != nil else { return }
        var request = HTTPClientRequest(url: url)
        request.method = .DELETE
        request.headers = headers(session)
        _ = try? await http.execute(request, timeout: .seconds(1))
    }

    // MARK: JSON-RPC

    /// Sends `method` in the session (begun first if need be; begun again once if the server forgot
    /// it) and answers the `result` object.
    func request(_ method: String, params: [String: JSONValue], session key: String) async throws -> [String: JSONValue] {
        let current = try await establishedSession(key)
        do {
            return try await send(method, params: params, in: current)
        } catch is SessionExpired {
            sessions.withLockedValue { sessions in
                if sessions.byKey[key]?.id == current.id { sessions.byKey[key] = nil }
            }
            return try await send(method, params: params, in: try await establishedSession(key))
        }
    }

    private struct SessionExpired: Error {}

    private func establishedSession(_ key: String) async throws -> Session {
        if let known = sessions.withLockedValue({ $0.byKey[key] }) { return known }
        let opening = Session(id: nil, protocolVersion: Self.protocolVersion)
        let (result, headers) = try await post(id: nextID(), "initialize", params: [
            "protocolVersion": .string(Self.protocolVersion),
            "capabilities": .object([:]),
            "clientInfo": .object(["name": .string("ChatServer"), "version": .string("1")]),
        ], in: opening)
        var begun = opening
        begun.id = headers.first(name: "mcp-session-id")
        if case .string(let version)? = result["protocolVersion"] { begun.protocolVersion = version }
        guard result["capabilities"]?.isObject == true else { throw MCPError("the server's initialize answer has no capabilities") }
        try await notify("notifications/initialized", in: begun)
        let ended: Session? = sessions.withLockedValue { sessions in
            if sessions.byKey.updateValue(begun, forKey: key) == nil { sessions.order.append(key) }
            guard sessions.order.count > Self.maxSessions else { return nil }
            let oldest = sessions.order.removeFirst()
            return sessions.byKey.removeValue(forKey: oldest)
        }
        if let ended { Task { await self.end(ended) } }
        return begun
    }

    private func send(_ method: String, params: [String: JSONValue], in session: Session) async throws -> [String: JSONValue] {
        let id = nextID()
        do {
            return try await post(id: id, method, params: params, in: session).result
        } catch is CancellationError {
            cancelled(id, in: session)
            throw CancellationError()
        }
    }

    private func nextID() -> Int { lastRequestID.withLockedValue { $0 += 1; return $0 } }

    /// Tells the server, without waiting, that request `id` is no longer wanted.
    private func cancelled(_ id: Int, in session: Session) {
        Task { [self] in
            try? await Self.within(.seconds(2)) { [self] in
                try await notify("notifications/cancelled", params: ["requestId": .number(Double(id)), "reason": .string("cancelled")], in: session)
            }
        }
    }

    private func notify(_ method: String, params: [String: JSONValue] = [:], in session: Session) async throws {
        var message: [String: JSONValue] = ["jsonrpc": .string("2.0"), "method": .string(method)]
        if !params.isEmpty { message["params"] = .object(params) }
        let response = try await http.execute(httpRequest(.object(message), session), timeout: .hours(1))
        _ = try? await response.body.collect(upTo: 64 << 10)
        guard (200..<300).contains(response.status.code) else { throw MCPError("\(method) was refused (HTTP \(response.status.code))") }
    }

    private func headers(_ session: Session) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: "application/json, text/event-stream")
        headers.add(name: "mcp-protocol-version", value: session.protocolVersion)
        if let id = session.id { headers.add(name: "mcp-session-id", value: id) }
        if let token { headers.add(name: "authorization", value: "Bearer \(token)") }
        return headers
    }

    private func httpRequest(_ message: JSONValue, _ session: Session) throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers = headers(session)
        request.body = .bytes(ByteBuffer(string: message.jsonText))
        return request
    }

    /// POSTs request `id` and reads its answer, from a JSON body or an event stream.
    private func post(id: Int, _ method: String, params: [String: JSONValue],
                      in session: Session) async throws -> (result: [String: JSONValue], headers: HTTPHeaders) {
        let message: JSONValue = .object(["jsonrpc": .string("2.0"), "id": .number(Double(id)), "method": .string(method),
                                          "params": .object(params)])
        let response: HTTPClientResponse
        do {
            response = try await http.execute(try httpRequest(message, session), timeout: .hours(1))
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            try Task.checkCancellation()
            throw MCPError("could not reach the server: \(Self.describe(error))")
        }
        let status = response.status.code
        if status == 404, session.id != nil { throw SessionExpired() }
        guard (200..<300).contains(status) else {
            switch status {
            case 401, 403: throw MCPError("the server refused the credentials (HTTP \(status))")
            default: throw MCPError("the server answered \(method) with HTTP \(status)")
            }
        }
        let isStream = response.headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") == true
        let answer = isStream ? try await streamedAnswer(to: id, response, session) : try await jsonAnswer(response)
        return (try Self.result(of: answer, id: id), response.headers)
    }

    private func jsonAnswer(_ response: HTTPClientResponse) async throws -> JSONValue {
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: maxResponseBytes)
        } catch is NIOTooManyBytesError {
            throw MCPError("the server's answer was larger than \(maxResponseBytes) bytes")
        }
        guard let answer = JSONValue.parse(Data(body.readableBytesView)) else { throw MCPError("the server's answer was not JSON") }
        return answer
    }

    /// Reads events until the one that answers `id`: notifications (progress, logs) are set
    /// aside; requests the server makes of this client are answered — `ping` with an empty
    /// result, anything else as not offered.
    private func streamedAnswer(to id: Int, _ response: HTTPClientResponse, _ session: Session) async throws -> JSONValue {
        var parser = ServerSentEventParser()
        var read = 0
        // A few of the server's own requests are answered; a flood of them is not.
        var answered = 0
        for try await chunk in response.body {
            read += chunk.readableBytes
            guard read <= maxResponseBytes else { throw MCPError("the server's answer was larger than \(maxResponseBytes) bytes") }
            var messages: [JSONValue] = []
            chunk.withUnsafeReadableBytes { bytes in
                parser.feed(bytes) { event in
                    if let message = JSONValue.parse(Data(event.data)) { messages.append(message) }
                }
            }
            for message in messages {
                guard case .object(let fields) = message else { continue }
                if fields["method"] != nil, let requestID = fields["id"] {
                    guard answered < Self.maxServerRequests else { continue }
                    answered += 1
                    await answerServerRequest(requestID, method: fields["method"], in: session)
                } else if fields["id"] == .number(Double(id)), fields["result"] != nil || fields["error"] != nil {
                    return message
                }
            }
        }
        throw MCPError("the server closed the stream without answering")
    }

    /// The most requests of the server's own (`ping`, …) answered during one answer.
    static let maxServerRequests = 4

    /// Answers a request of the server's (briefly; in turn, so that a server cannot make this client pile up work).
    private func answerServerRequest(_ id: JSONValue, method: JSONValue?, in session: Session) async {
        var reply: [String: JSONValue] = ["jsonrpc": .string("2.0"), "id": id]
        if method == .string("ping") {
            reply["result"] = .object([:])
        } else {
            reply["error"] = .object(["code": .number(-32601), "message": .string("not offered by this client")])
        }
        let message = JSONValue.object(reply)
        try? await Self.within(.seconds(2)) { [self] in
            let response = try await http.execute(try httpRequest(message, session), timeout: .hours(1))
            _ = try? await response.body.collect(upTo: 64 << 10)
        }
    }

    /// The `result` object of a JSON-RPC response to `id`, or its error as an ``MCPError``.
    private static func result(of answer: JSONValue, id: Int) throws -> [String: JSONValue] {
        guard case .object(let fields) = answer else { throw MCPError("the server's answer was not a JSON-RPC response") }
        if case .object(let error)? = fields["error"] {
            var message = "the server refused the request"
            if case .string(let text)? = error["message"] { message = text }
            throw MCPError(cut(message, toBytes: 2048), isProtocolError: true)
        }
        guard fields["id"] == .number(Double(id)) else { throw MCPError("the server answered another request") }
        guard case .object(let result)? = fields["result"] else { throw MCPError("the server's answer has no result") }
        return result
    }
}
