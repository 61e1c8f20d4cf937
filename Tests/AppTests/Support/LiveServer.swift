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
    func withLiveServer<T>(port: Int = 0, _ body: (_ baseURL: String) async throws -> T) async throws -> T {
        try await app.server.start(address: .hostname("127.0.0.1", port: port))
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

/// A TCP port on loopback that nothing listens on right now, for a server whose address must be
/// known before it starts (a callback URL in its settings).
func freeLoopbackPort() throws -> Int {
    let descriptor = try boundLoopbackSocket()
    defer { close(descriptor.socket) }
    return descriptor.port
}

/// A loopback port that refuses every connection for as long as this value lives: bound and never
/// listening, so no other test's server can be given it. (A port merely found free can be handed to
/// another test's emulator before it is dialled, and then the "refused" upstream answers.)
final class RefusingPort: Sendable {
    let port: Int
    private let socket: Int32

    init() throws {
        (socket, port) = try boundLoopbackSocket()
    }

    /// `http://127.0.0.1:<port>` followed by `path`.
    func url(_ path: String = "") -> String { "http://127.0.0.1:\(port)\(path)" }

    deinit { close(socket) }
}

private func boundLoopbackSocket() throws -> (socket: Int32, port: Int) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw HTTPProblem(.internalServerError, detail: "no socket") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
    guard bound == 0, withUnsafeMutablePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }) == 0
    else { close(descriptor); throw HTTPProblem(.internalServerError, detail: "no free port") }
    return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}
