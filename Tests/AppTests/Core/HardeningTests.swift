@testable import App
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import Testing
import VaporTesting

@Suite("Hardening")
struct HardeningTests {
    @Test("every response, errors too, carries the security headers; no HSTS over plain HTTP")
    func securityHeaders() async throws {
        try await withTestApp(.sqlite, settings: ["SECURE_HSTS_SECONDS": "31536000"]) { t in
            for path in ["/healthz", "/api/chat/", "/no/such/route"] {
                let response = try await t.send(.GET, path)
                #expect(response.headers.first(name: "X-Content-Type-Options") == "nosniff", "\(path)")
                #expect(response.headers.first(name: "X-Frame-Options") == "DENY", "\(path)")
                #expect(response.headers.first(name: "Referrer-Policy") == "no-referrer", "\(path)")
                #expect(response.headers.first(name: "Content-Security-Policy")?.contains("default-src 'none'") == true, "\(path)")
                #expect(response.headers.first(name: "Strict-Transport-Security") == nil, "\(path)")
            }
        }
    }

    @Test("behind a trusted TLS proxy: HSTS on HTTPS, plain HTTP redirected with SECURE_SSL_REDIRECT")
    func tls() async throws {
        let settings = ["SECURE_HSTS_SECONDS": "31536000", "SECURE_SSL_REDIRECT": "true", "TRUSTED_PROXIES": "10.0.0.1"]
        try await withTestApp(.sqlite, settings: settings) { t in
            let secure = try await t.send(.GET, "/healthz", from: "10.0.0.1", headers: ["X-Forwarded-Proto": "https"])
            #expect(secure.status == .ok)
            #expect(secure.header("Strict-Transport-Security") == "max-age=31536000; includeSubDomains")

            let plain = try await t.send(.GET, "/api/chat/?q=x", from: "10.0.0.1", headers: ["X-Forwarded-Proto": "http"])
            #expect(plain.status == .movedPermanently)
            #expect(plain.header("Location") == "https://localhost/api/chat/?q=x")

            // Health checks and metrics scrapes over plain HTTP are not redirected.
            let probe = try await t.send(.GET, "/readyz", from: "10.0.0.1")
            #expect(probe.status == .ok)

            // Only a trusted proxy can say a request was HTTPS.
            let spoofed = try await t.send(.GET, "/api/models/", from: "192.0.2.50", headers: ["X-Forwarded-Proto": "https"])
            #expect(spoofed.status == .movedPermanently)
        }
    }

    @Test("the HTTPS redirect goes only to an allowed host, named as parsed, never as the request wrote it")
    func redirectHost() async throws {
        let settings = ["SECURE_SSL_REDIRECT": "true", "ALLOWED_HOSTS": "chat.example.com,localhost"]
        try await withTestApp(.sqlite, settings: settings) { t in
            let allowed = try await t.send(.GET, "/api/chat/", from: "192.0.2.1", headers: ["Host": "Chat.Example.com:8080"])
            #expect(allowed.status == .movedPermanently)
            #expect(allowed.header("Location") == "https://chat.example.com/api/chat/")
            for host in ["evil.example", "chat.example.com.evil.example", "evil.example/chat.example.com", "chat.example.com@evil.example"] {
                let refused = try await t.send(.GET, "/api/chat/", from: "192.0.2.1", headers: ["Host": host])
                #expect(refused.status == .badRequest, "\(host)")
                #expect(refused.header("Location") == nil, "\(host)")
                #expect(try refused.problem().title == "Host not allowed")
            }
        }
    }

    @Test("a request slower than REQUEST_TIMEOUT is 503 problem+json at once")
    func requestTimeout() async throws {
        try await withTestApp(.sqlite, settings: ["REQUEST_TIMEOUT": "0.2"]) { t in
            // A handler that never answers on its own: only the timeout can end the request.
            t.app.get("slow") { _ -> String in
                try await Task.sleep(for: .seconds(3600))
                return "late"
            }
            let started = ContinuousClock.now
            let response = try await t.send(.GET, "/slow")
            #expect(response.status == .serviceUnavailable)
            #expect(try response.problem().title == "Request timed out")
            #expect(started.duration(to: .now) < .seconds(10))
            // Fast requests are unaffected.
            #expect(try await t.send(.GET, "/healthz").status == .ok)
        }
    }

    @Test("oversized request headers are refused without reaching the application")
    func oversizedHeaders() async throws {
        try await withTestApp(.sqlite) { t in
            try await t.withLiveServer { base in
                var headers = HTTPHeaders([("Host", "localhost")])
                headers.add(name: "X-Padding", value: String(repeating: "a", count: 100 * 1024))
                let outcome: HTTPResponseStatus?
                do {
                    outcome = try await LiveHTTP.send(.GET, base + "/healthz", headers: headers).status
                } catch {
                    outcome = nil // the server closed the connection
                }
                #expect(outcome != .ok)
                if let outcome { #expect((400..<500).contains(outcome.code)) }
                // The server is still serving.
                do {
                    let response = try await LiveHTTP.send(.GET, base + "/healthz", headers: ["Host": "localhost"])
                    #expect(response.status == .ok)
                }
            }
        }
    }

    @Test("one user may hold at most MAX_STREAMS_PER_USER streams open; closing one frees a place")
    func streamCap() async throws {
        try await withTestApp(.sqlite, settings: ["MAX_STREAMS_PER_USER": "2", "SSE_KEEPALIVE_INTERVAL": "0.1"]) { t in
            let alice = try await t.register()
            let bob = try await t.register()
            let chat = try await t.createChat(token: alice.access)
            let bobsChat = try await t.createChat(token: bob.access)
            try await t.withLiveServer { base in
                let path = "/api/chat/\(chat.id)/messages/"
                let first = try await EventStreamClient.open(base, path, token: alice.access)
                let second = try await EventStreamClient.open(base, path, token: alice.access)
                #expect(first.status == .ok)
                #expect(second.status == .ok)
                let third = try await LiveHTTP.send(.GET, base + path, headers: ["Authorization": "Bearer \(alice.access)"])
                #expect(third.status == .tooManyRequests)
                #expect(third.body.contains("Too many open streams"))
                #expect(third.headers.first(name: "Content-Type") == "application/problem+json")

                // Bob is not affected.
                let bobs = try await EventStreamClient.open(base, "/api/chat/\(bobsChat.id)/messages/", token: bob.access)
                #expect(bobs.status == .ok)

                first.close()
                var reopened: EventStreamClient?
                // The server notices the closed connection at its next write (a keep-alive here).
                try await waitUntil("closing a stream to free its place") {
                    let attempt = try await EventStreamClient.open(base, path, token: alice.access, readBody: false)
                    if attempt.status == .ok { reopened = attempt }
                    return reopened != nil
                }
                reopened?.close()
                second.close()
                bobs.close()
            }
        }
    }
}
