import Foundation
import Providers

/// How a reply ended, before it is stored.
enum ReplyOutcome: Equatable {
    /// The model finished.
    case complete(ModelCompletion)
    /// With what the client is told, and the usage reported before the failure.
    case failed(String, usage: ModelUsage?)
    case cancelled

    /// What a reply that threw `error` ended as: stopped by the user (cancelled), stopped by a
    /// shutdown (failed, to be sent again), a provider's failure as it explains itself, or a server
    /// error that says nothing of its internals.
    init(_ error: any Error, stopReason: ReplyStopReason?) {
        if error is CancellationError || stopReason != nil {
            self = stopReason == .shutdown ? .failed("The server shut down before the reply finished.", usage: nil) : .cancelled
        } else if let providerError = error as? ProviderError {
            self = .failed(providerError.description, usage: providerError.usage)
        } else {
            self = .failed("The reply could not be completed because of a server error.", usage: nil)
        }
    }

    /// The stored form of this outcome, with the reply's text and how many earlier messages its
    /// request left out.
    func ending(text: String, omittedMessages: Int) -> ReplyStore.Ending {
        switch self {
        case .complete(let completion):
            ReplyStore.Ending(status: .complete, text: text, usage: completion.usage, stopReason: completion.stopReason, error: nil,
                              omittedMessages: omittedMessages)
        case .failed(let message, let usage):
            ReplyStore.Ending(status: .failed, text: text, usage: usage ?? ModelUsage(), stopReason: nil, error: message,
                              omittedMessages: omittedMessages)
        case .cancelled:
            ReplyStore.Ending(status: .cancelled, text: text, usage: ModelUsage(), stopReason: nil, error: nil,
                              omittedMessages: omittedMessages)
        }
    }
}
