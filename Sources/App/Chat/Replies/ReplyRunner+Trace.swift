import NIOConcurrencyHelpers

/// What a reply reports of itself while it runs: its span (``ModelCallTrace``) and the time to its
/// first token.
extension ReplyRunner {
    /// The span of the reply's model call, when traces are on.
    func startTrace(of job: ReplyJob) -> ModelCallTrace {
        guard telemetry != nil else { return .off }
        let route = catalog.route(job.model)
        return ModelCallTrace.start(telemetry, model: job.model, providerModel: route?.model ?? job.model, upstream: .init(route),
                                    conversation: job.chatID)
    }
}

/// Measures the time to a reply's first token, once.
final class FirstTokenClock: Sendable {
    private let started: ContinuousClock.Instant
    private let metrics: AppMetrics
    private let trace: ModelCallTrace
    private let seen = NIOLockedValueBox(false)

    init(started: ContinuousClock.Instant, metrics: AppMetrics, trace: ModelCallTrace) {
        self.started = started
        self.metrics = metrics
        self.trace = trace
    }

    func arrived(at instant: ContinuousClock.Instant) {
        let first = seen.withLockedValue { seen in
            defer { seen = true }
            return !seen
        }
        guard first else { return }
        let elapsed = started.duration(to: instant)
        metrics.firstTokenArrived(after: elapsed)
        trace.firstToken(after: elapsed)
    }
}
