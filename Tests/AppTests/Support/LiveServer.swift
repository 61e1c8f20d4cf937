import App
import AsyncHTTPClient
import Testing
import Foundation
import NIOCore
import NIOHTTP1
import Vapor

extension TestApp {
    /// Runs the real HTTP server on a free loopback port for the length of `body`, for what the
    /// in-memory tester cannot show (streamed bodies, size limits, connections that close).
    func withLiveServer<T>(_ body: (_ baseURL: String) async throws -> T) async throws -> T {
        try await app.server.start(address: .hostname("127.0.0.1", port: 0))
        guard let port = app.http.server.shared.localAddress?.port else {
            await app.server.shutdown()
            throw HTTPProblem(.internalServerError, detail: "the test server has no port")
        }
        do {
            let result = try await body("http://127.0.0.1:\(port)")
            await app.server.shutdown()
            return result
        } catch {
            await app.server.shutdown()
            throw error
        }
    }
}

/// A whole response from the live server.
struct LiveResponse {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: String
}

enum LiveHTTP {
    static func send(_ method: HTTPMethod, _ url: String, headers: HTTPHeaders = [:], body: ByteBuffer? = nil) async throws -> LiveResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers = headers
        if let body { request.body = .bytes(body) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let collected = try await response.body.collect(upTo: 16 << 20)
        return LiveResponse(status: response.status, headers: response.headers, body: String(buffer: collected))
    }
}
