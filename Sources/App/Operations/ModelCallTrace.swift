import Foundation
import NIOConcurrencyHelpers
import Providers
import Tracing

/// The span of one model call — a chat's reply, with all its tool rounds, or a
/// `/v1/chat/completions` request — after OpenTelemetry's GenAI semantic conventions: `chat
/// {model}`, a client span of the request that started it, with the provider, the model, the
/// request's limits, the tokens used and why it stopped; an event at the first token, one per
/// retry of the provider; an `execute_tool {name}` span per tool call. Never the prompt, the answer
/// or a tool's arguments or result. Without ``Telemetry`` it holds nothing and each call is a nil check.
struct ModelCallTrace: Sendable {
    private let span: (any Span)?
    private let tracer: (any Tracer)?

    static let off = ModelCallTrace(span: nil, tracer: nil)

    private init(span: (any Span)?, tracer: (any Tracer)?) {
        self.span = span
        self.tracer = tracer
    }

    /// Where a call goes: a configured provider, the offline stand-in, or nowhere (no provider
    /// offers the model: the call fails before it is made).
    enum Upstream {
        case provider(ModelSettings.Provider)
        case offline
        case unknown

        /// The upstream of a ``ModelCatalog`` route; `.unknown` without one.
        init(_ route: ModelCatalog.Route?) {
            guard let route else {
                self = .unknown
                return
            }
            self = route.settings.map(Upstream.provider) ?? .offline
        }

        var name: String {
            switch self {
            case .provider(let settings): settings.name
            case .offline: "offline"
            case .unknown: "unknown"
            }
        }
    }

    /// What a call is for: a chat's reply, a chat's title, or a `/v1` caller's completion.
    enum Purpose: String {
        case reply, title, completion
    }

    /// Starts the span of a call of `model` (its id here: the provider's own name for it is
    /// `providerModel`) to `upstream`.
    static func start(_ telemetry: Telemetry?, model: String, providerModel: String, upstream: Upstream,
                      purpose: Purpose, conversation: UUID? = nil) -> ModelCallTrace {
        guard let tracer = telemetry?.tracer else { return .off }
        let span = tracer.startAnySpan("chat \(providerModel)", context: Telemetry.currentContext, ofKind: .client)
        span.updateAttributes { attributes in
            attributes["gen_ai.operation.name"] = "chat"
            attributes["gen_ai.provider.name"] = upstream.name
            attributes["gen_ai.request.model"] = providerModel
            attributes["chat_server.model"] = model
            attributes["chat_server.purpose"] = purpose.rawValue
            if let conversation { attributes["gen_ai.conversation.id"] = conversation.uuidString.lowercased() }
            if case .provider(let provider) = upstream, let url = URL(string: provider.baseURL), let host = url.host {
                attributes["server.address"] = host
                attributes["server.port"] = url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80)
            }
        }
        return ModelCallTrace(span: span, tracer: tracer)
    }

    /// The request's limits, once it is made.
    func asked(_ request: ModelRequest) {
        span?.updateAttributes { attributes in
            attributes["gen_ai.request.max_tokens"] = request.maxTokens
            if let temperature = request.temperature { attributes["gen_ai.request.temperature"] = temperature }
            if let budget = request.thinkingBudget { attributes["chat_server.request.thinking_budget"] = budget }
            if !request.tools.isEmpty { attributes["chat_server.request.tools"] = request.tools.count }
        }
    }

    /// Why the call failed: a provider's failure by its kind, anything else by its type.
    func failed(_ error: any Error) {
        span?.attributes["error.type"] = (error as? ProviderError)?.kind.rawValue ?? String(describing: type(of: error))
    }

    /// A retry of the provider: its number, the failure that caused it, the wait before it.
    func retrying(_ retry: Int, after error: ProviderError, wait: Duration) {
        span?.addEvent(SpanEvent(name: "retry", attributes: [
            "chat_server.retry": .int(Int64(retry)), "error.type": .string(error.kind.rawValue),
            "chat_server.retry.wait_ms": .int(Int64(wait.seconds * 1000)),
        ]))
    }

    /// The first piece of text (or reasoning) arrived, `elapsed` after the call began.
    func firstToken(after elapsed: Duration) {
        span?.addEvent(SpanEvent(name: "gen_ai.first_token", attributes: ["gen_ai.response.time_to_first_token": .double(elapsed.seconds)]))
    }

    /// A tool call's span, inside this one; end it with ``ToolTrace/end(isError:status:)``.
    func toolCall(name: String, id: String, server: String?) -> ToolTrace {
        guard let span, let tracer else { return ToolTrace(span: nil) }
        let tool = tracer.startAnySpan("execute_tool \(name)", context: span.context, ofKind: .internal)
        tool.updateAttributes { attributes in
            attributes["gen_ai.operation.name"] = "execute_tool"
            attributes["gen_ai.tool.name"] = name
            attributes["gen_ai.tool.call.id"] = id
            attributes["gen_ai.tool.type"] = "extension"
            if let server { attributes["chat_server.tool.server"] = server }
        }
        return ToolTrace(span: tool)
    }

    /// Ends the span: how the call ended (`complete`, `failed`, `cancelled`, `dropped` when its
    /// chat was deleted), why the model stopped, and what it consumed.
    func end(status: String, stopReason: String?, usage: ModelUsage?) {
        guard let span else { return }
        span.updateAttributes { attributes in
            attributes["chat_server.reply.status"] = status
            if let stopReason { attributes["gen_ai.response.finish_reasons"] = [stopReason] }
            if let usage {
                attributes["gen_ai.usage.input_tokens"] = usage.inputTokens + usage.cacheReadInputTokens + usage.cacheCreationInputTokens
                attributes["gen_ai.usage.output_tokens"] = usage.outputTokens
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cacheReadInputTokens
                attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cacheCreationInputTokens
            }
        }
        if status == "failed" { span.setStatus(SpanStatus(code: .error)) }
        span.end()
    }
}

/// The span of one tool call (``ModelCallTrace/toolCall(name:id:server:)``).
struct ToolTrace: Sendable {
    fileprivate let span: (any Span)?

    func end(isError: Bool, status: String? = nil) {
        guard let span else { return }
        if let status { span.attributes["chat_server.tool.status"] = status }
        if isError {
            span.attributes["error.type"] = "tool_error"
            span.setStatus(SpanStatus(code: .error))
        }
        span.end()
    }
}

/// Measures the time to a model call's first token (a reply's, or a `/v1` completion's), once: into the
/// metric and the call's span.
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

    /// A token arrived at `instant` (read only for the first).
    func arrived(at instant: @autoclosure () -> ContinuousClock.Instant) {
        let first = seen.withLockedValue { seen in
            defer { seen = true }
            return !seen
        }
        guard first else { return }
        let elapsed = started.duration(to: instant())
        metrics.firstTokenArrived(after: elapsed)
        trace.firstToken(after: elapsed)
    }
}
