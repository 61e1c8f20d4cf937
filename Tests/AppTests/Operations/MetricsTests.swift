@testable import App
import AnthropicEmulator
import Foundation
import Testing
import VaporTesting

@Suite("Metrics")
struct MetricsTests {
    @Test("/metrics is served to loopback clients only, never through a proxy, unless METRICS_TOKEN is set")
    func access() async throws {
        try await withTestApp(.sqlite) { t in
            let local = try await t.send(.GET, "/metrics", from: "127.0.0.1")
            #expect(local.status == .ok)
            #expect(local.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
            do {
                let response = try await t.send(.GET, "/metrics", from: "::1")
                #expect(response.status == .ok)
            }

            let remote = try await t.send(.GET, "/metrics", from: "203.0.113.1")
            #expect(remote.status == .forbidden)
            #expect(try remote.problem().status == 403)
            // A proxy on the same host forwards outside requests from loopback: not trusted.
            do {
                let response = try await t.send(.GET, "/metrics", from: "127.0.0.1", headers: ["X-Forwarded-For": "203.0.113.1"])
                #expect(response.status == .forbidden)
            }
        }
        try await withTestApp(.sqlite, settings: ["METRICS_TOKEN": "scrape-secret"]) { t in
            do {
                let response = try await t.send(.GET, "/metrics", from: "203.0.113.1")
                #expect(response.status == .unauthorized)
            }
            do {
                let response = try await t.send(.GET, "/metrics", from: "127.0.0.1", token: "wrong")
                #expect(response.status == .unauthorized)
            }
            do {
                let response = try await t.send(.GET, "/metrics", from: "203.0.113.1", token: "scrape-secret")
                #expect(response.status == .ok)
            }
        }
    }

    @Test("requests, rate-limit rejections, streams, replies, tokens and upstream errors are counted")
    func countersMove() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_ANONYMOUS": "2/minute"], emulated: true) { t in
            let emulator = try #require(t.emulator)
            let session = try await t.register()
            _ = try await t.send(.GET, "/auth/providers/", from: "198.51.100.1")
            _ = try await t.send(.GET, "/auth/providers/", from: "198.51.100.1")
            _ = try await t.send(.GET, "/auth/providers/", from: "198.51.100.1")

            let chat = try await t.createChat(token: session.access)
            try await t.withLiveServer { base in
                let stream = try await EventStreamClient.open(base, "/api/chat/\(chat.id)/messages/", token: session.access)
                let during = try await metrics(t)
                #expect(value(during, "chat_streams_open") == 1)
                emulator.enqueue(.reply(["One", " two", " three"]))
                let turn = try await t.sendMessage("count", chat: chat.id, token: session.access)
                _ = try await stream.waitForDone(turn.assistant.id)
                stream.close()
            }
            emulator.enqueue(.error(status: 401, type: "authentication_error", message: "invalid x-api-key"))
            let failed = try await t.sendMessage("again", chat: chat.id, token: session.access)
            _ = try await t.waitForReply(failed.assistant.id, chat: chat.id, token: session.access)

            var text = try await metrics(t)
            try await waitUntil("the streams and replies to be let go") {
                text = try await metrics(t)
                return value(text, "chat_streams_open") == 0 && value(text, "chat_replies_in_flight") == 0
            }
            #expect(value(text, #"http_requests_total{method="GET",route="/auth/providers",status="200"}"#) == 2)
            #expect(value(text, #"http_requests_total{method="GET",route="/auth/providers",status="429"}"#) == 1)
            #expect(value(text, #"http_requests_total{method="POST",route="/api/chat/:chatID/send",status="202"}"#) == 2)
            #expect(value(text, #"rate_limit_rejections_total{policy="anonymous"}"#) == 1)
            #expect(value(text, #"http_request_duration_seconds_count{method="POST",route="/auth/register"}"#) == 1)
            #expect(value(text, "chat_streams_open") == 0)
            #expect(value(text, "chat_replies_in_flight") == 0)
            #expect(value(text, #"chat_replies_total{status="complete"}"#) == 1)
            #expect(value(text, #"chat_replies_total{status="failed"}"#) == 1)
            #expect(value(text, #"chat_tokens_total{direction="out"}"#) == 3)
            #expect((value(text, #"chat_tokens_total{direction="in"}"#) ?? 0) > 0)
            #expect(value(text, #"chat_upstream_errors_total{kind="authentication"}"#) == 1)
            #expect(value(text, "chat_upstream_first_token_seconds_count") == 1)
            #expect((value(text, "chat_relay_latency_seconds_count") ?? 0) >= 3)
        }
    }

    private func metrics(_ t: TestApp) async throws -> String {
        let response = try await t.send(.GET, "/metrics", from: "127.0.0.1")
        try #require(response.status == .ok)
        return String(buffer: response.body)
    }

    /// The value of the sample named exactly `series` (name and labels as exposed).
    private func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }
}
