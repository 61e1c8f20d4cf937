import Foundation
import Providers

/// How a reply ended, before it is stored.
enum ReplyOutcome: Equatable {
    /// The model finished.
    case complete(ModelCompletion)
    /// With what the client is told.
    case failed(String)
    case cancelled

    /// What a reply that threw `error` ended as: stopped by the user (cancelled), stopped by a
    /// shutdown (failed, to be sent again), a provider's failure as it explains itself, or a server
    /// error that says nothing of its internals.
    init(_ error: any Error, stopReason: ReplyStopReason?) {
        if case .tooLarge(let bytes) = stopReason {
            self = .failed("The model sent more than a reply may hold (\(bytes) bytes); it was cut off there.")
        } else if error is CancellationError || stopReason != nil {
            self = stopReason == .shutdown ? .failed("The server shut down before the reply finished.") : .cancelled
        } else if let providerError = error as? ProviderError {
            self = .failed(providerError.description)
        } else {
            self = .failed("The reply could not be completed because of a server error.")
        }
    }

    /// The stored form of this outcome, with the reply's text, what it consumed and how many
    /// earlier messages its request left out.
    /// `roundOutput` is what the last round of the model wrote (all of it, without tools: the
    /// reasoning and the text), from which its usage is estimated when the provider gave none.
    func ending(text: String, reasoning: String? = nil, reasoningSignature: String? = nil, toolCalls: [ToolCallRecord] = [],
                usage: ReplyUsage, roundOutput: String? = nil, omittedMessages: Int) -> ReplyStore.Ending {
        let completion: ModelCompletion? = if case .complete(let completion) = self { completion } else { nil }
        // Reasoning is output the provider bills too.
        let (tokens, estimated) = usage.accounted(text: roundOutput ?? (reasoning ?? "") + text, completion: completion)
        var ending = ReplyStore.Ending(status: .complete, text: text, usage: tokens, usageEstimated: estimated, reasoning: reasoning,
                                       reasoningSignature: reasoningSignature, toolCalls: toolCalls, stopReason: nil, error: nil,
                                       omittedMessages: omittedMessages)
        switch self {
        case .complete(let completion): ending.stopReason = completion.stopReason
        case .failed(let message): (ending.status, ending.error) = (.failed, message)
        case .cancelled: ending.status = .cancelled
        }
        return ending
    }
}
