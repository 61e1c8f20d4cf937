/// The span (``ModelCallTrace``) of a reply's model call.
extension ReplyRunner {
    /// The span of the reply's model call, when traces are on.
    func startTrace(of job: ReplyJob) -> ModelCallTrace {
        guard telemetry != nil else { return .off }
        let route = catalog.route(job.model)
        return ModelCallTrace.start(telemetry, model: job.model, providerModel: route?.model ?? job.model, upstream: .init(route), purpose: .reply,
                                    conversation: job.chatID)
    }
}
