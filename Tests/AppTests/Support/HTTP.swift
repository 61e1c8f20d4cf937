import App
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import VaporTesting

extension TestApp {
    /// Sends a request through the application in memory, as a client on localhost would.
    /// `json` is serialized as given, so tests can send wrong types on purpose.
    @discardableResult
    func send(
        _ method: HTTPMethod,
        _ path: String,
        json: [String: Any]? = nil,
        body: String? = nil,
        contentType: String? = nil,
        token: String? = nil,
        headers extra: HTTPHeaders = [:],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestingHTTPResponse {
        var headers = HTTPHeaders([("Host", "localhost")])
        var buffer: ByteBuffer?
        if let json {
            buffer = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
            headers.replaceOrAdd(name: .contentType, value: "application/json")
        } else if let body {
            buffer = ByteBuffer(string: body)
        }
        if let contentType { headers.replaceOrAdd(name: .contentType, value: contentType) }
        if let token { headers.replaceOrAdd(name: .authorization, value: "Bearer \(token)") }
        for (name, value) in extra { headers.replaceOrAdd(name: name, value: value) }
        return try await app.testing().sendRequest(
            method, path, headers: headers, body: buffer,
            fileID: sourceLocation.fileID, filePath: sourceLocation.filePath,
            line: sourceLocation.line, column: sourceLocation.column
        )
    }
}

/// The contract's problem details, as a client reads them.
struct ProblemBody: Decodable, Equatable {
    var type: String
    var title: String
    var status: Int
    var detail: String?
    var errors: [String: [String]]?
    /// The extension member naming the problem for programs (`quota_exceeded`).
    var code: String?
}

extension TestingHTTPResponse {
    func decoded<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(buffer: body))
    }

    func jsonObject() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any])
    }

    /// The problem+json body; records an issue when the response is not one.
    func problem(sourceLocation: SourceLocation = #_sourceLocation) throws -> ProblemBody {
        #expect(headers.first(name: .contentType) == "application/problem+json", sourceLocation: sourceLocation)
        let problem = try decoded(ProblemBody.self)
        #expect(problem.status == Int(status.code), sourceLocation: sourceLocation)
        return problem
    }
}

extension TestApp {
    /// Sends a request through the application in memory as if from the socket peer `peer`
    /// (the in-memory tester has no peer address), for what depends on the client's address.
    func send(
        _ method: HTTPMethod,
        _ path: String,
        from peer: String,
        token: String? = nil,
        headers extra: HTTPHeaders = [:],
        json: [String: Any]? = nil
    ) async throws -> PeerResponse {
        var headers = HTTPHeaders([("Host", "localhost")])
        var body: ByteBuffer?
        if let json {
            body = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
            headers.replaceOrAdd(name: .contentType, value: "application/json")
            headers.replaceOrAdd(name: .contentLength, value: String(body?.readableBytes ?? 0))
        }
        if let token { headers.replaceOrAdd(name: .authorization, value: "Bearer \(token)") }
        for (name, value) in extra { headers.replaceOrAdd(name: name, value: value) }
        let request = Request(
            application: app, method: method, url: URI(string: path), headers: headers, collectedBody: body,
            remoteAddress: try SocketAddress(ipAddress: peer, port: 40_000), logger: app.logger,
            on: app.eventLoopGroup.next()
        )
        let response = try await app.responder.respond(to: request).get()
        let collected = try await response.body.collect(on: request.eventLoop).get() ?? ByteBuffer()
        return PeerResponse(status: response.status, headers: response.headers, body: collected)
    }
}

/// A response to ``TestApp/send(_:_:from:token:headers:json:)``.
struct PeerResponse {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ByteBuffer

    func problem(sourceLocation: SourceLocation = #_sourceLocation) throws -> ProblemBody {
        #expect(headers.first(name: .contentType) == "application/problem+json", sourceLocation: sourceLocation)
        return try JSONDecoder().decode(ProblemBody.self, from: Data(buffer: body))
    }

    func header(_ name: String) -> String? { headers.first(name: name) }
}
