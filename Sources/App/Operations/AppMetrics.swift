import Foundation
import NIOConcurrencyHelpers
import Prometheus

/// The service's metrics, in one Prometheus registry owned by the application (so tests, which run
/// many applications in one process, each see their own). Exposed at `GET /metrics`.
final class AppMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    private let streamsOpen: Gauge
    private let repliesInFlight: Gauge
    private let firstToken: DurationHistogram
    private let relayLatency: DurationHistogram
    private let tokensIn: Counter
    private let tokensOut: Counter
    private let streamsBehind: Counter

    static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
    ]

    init() {
        streamsOpen = registry.makeGauge(descriptor: .init(metricName: "chat_streams_open", unitName: "", helpText: "Event streams open now."))
        repliesInFlight = registry.makeGauge(descriptor: .init(metricName: "chat_replies_in_flight", unitName: "", helpText: "Assistant replies streaming now."))
        firstToken = registry.makeDurationHistogram(
            descriptor: .init(metricName: "chat_upstream_first_token_seconds", unitName: "", helpText: "From starting a reply to its first token from the model provider."),
            buckets: Self.latencyBuckets)
        relayLatency = registry.makeDurationHistogram(
            descriptor: .init(metricName: "chat_relay_latency_seconds", unitName: "", helpText: "From a delta reaching the server to its write to a stream's socket."),
            buckets: Self.latencyBuckets)
        tokensIn = registry.makeCounter(descriptor: .init(metricName: "chat_tokens_total", unitName: "", helpText: "Tokens reported by the model provider."),
                                        labels: [("direction", "in")])
        tokensOut = registry.makeCounter(descriptor: .init(metricName: "chat_tokens_total", unitName: "", helpText: "Tokens reported by the model provider."),
                                         labels: [("direction", "out")])
        streamsBehind = registry.makeCounter(descriptor: .init(
            metricName: "chat_streams_behind_total", unitName: "",
            helpText: "Event streams ended because their reader fell SSE_MAX_PENDING_EVENTS events behind (it resumes by id)."))
    }

    /// The Prometheus text exposition of every metric.
    func exposition() -> [UInt8] { registry.emitToBuffer() }

    func request(method: String, route: String, status: UInt, duration: Duration) {
        registry.makeCounter(descriptor: .init(metricName: "http_requests_total", unitName: "", helpText: "HTTP requests by route and status."),
                             labels: [("method", method), ("route", route), ("status", String(status))]).increment()
        registry.makeDurationHistogram(descriptor: .init(metricName: "http_request_duration_seconds", unitName: "", helpText: "Time to the response head, by route."),
                                       labels: [("method", method), ("route", route)], buckets: Self.latencyBuckets).record(duration)
    }

    func streamOpened() { streamsOpen.increment() }
    func streamClosed() { streamsOpen.decrement() }
    func streamFellBehind() { streamsBehind.increment() }
    func replyStarted() { repliesInFlight.increment() }

    func replyEnded(status: String, inputTokens: Int, outputTokens: Int) {
        repliesInFlight.decrement()
        tokensIn.increment(by: Int64(inputTokens))
        tokensOut.increment(by: Int64(outputTokens))
        registry.makeCounter(descriptor: .init(metricName: "chat_replies_total", unitName: "", helpText: "Replies ended, by how they ended."),
                             labels: [("status", status)]).increment()
    }

    func firstTokenArrived(after duration: Duration) { firstToken.record(duration) }
    /// Deltas written to a stream's socket, each with the time it reached the server.
    func relayed(_ receivedAt: [ContinuousClock.Instant]) {
        guard !receivedAt.isEmpty else { return }
        let now = ContinuousClock.now
        for instant in receivedAt { relayLatency.record(instant.duration(to: now)) }
    }

    /// A tool call a reply made, by MCP server and outcome, with how long it took.
    func toolCalled(server: String, isError: Bool, duration: Duration) {
        registry.makeCounter(descriptor: .init(metricName: "chat_tool_calls_total", unitName: "", helpText: "Tool calls by MCP server and outcome."),
                             labels: [("server", server), ("outcome", isError ? "error" : "ok")]).increment()
        registry.makeDurationHistogram(descriptor: .init(metricName: "chat_tool_call_duration_seconds", unitName: "",
                                                         helpText: "Time a tool call took, by MCP server."),
                                       labels: [("server", server)], buckets: Self.latencyBuckets).record(duration)
    }

    func upstreamError(_ kind: String) {
        registry.makeCounter(descriptor: .init(metricName: "chat_upstream_errors_total", unitName: "", helpText: "Model provider failures, by kind."),
                             labels: [("kind", kind)]).increment()
    }

    /// A notification between instances that could not be sent and was dropped (``PostgresNotifier``).
    func busNotificationDropped(_ reason: String) {
        registry.makeCounter(descriptor: .init(metricName: "chat_bus_notifications_dropped_total", unitName: "",
                                               helpText: "Notifications between instances dropped, by reason."),
                             labels: [("reason", reason)]).increment()
    }

    func rateLimitRejected(_ policy: String) {
        registry.makeCounter(descriptor: .init(metricName: "rate_limit_rejections_total", unitName: "", helpText: "Requests refused by a rate limit, by limit."),
                             labels: [("policy", policy)]).increment()
    }
}
