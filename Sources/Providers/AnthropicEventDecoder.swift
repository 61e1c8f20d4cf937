import Foundation

/// Turns the Messages API's stream events into ``ModelEvent``s: text deltas as they come, usage and
/// the stop reason at the end. Event and delta types it does not use are skipped, so new ones the
/// API adds later (thinking, tool use, …) do no harm.
struct AnthropicEventDecoder {
    private(set) var usage = ModelUsage()
    private(set) var stopReason: String?
    private(set) var sawMessageStop = false
    private let json = JSONDecoder()

    private struct BlockDelta: Decodable {
        struct Delta: Decodable {
            var type: String
            var text: String?
        }
        var delta: Delta
    }

    private struct Usage: Decodable {
        var input_tokens: Int?
        var output_tokens: Int?
    }

    private struct MessageStart: Decodable {
        struct Message: Decodable { var usage: Usage? }
        var message: Message
    }

    private struct MessageDelta: Decodable {
        struct Delta: Decodable { var stop_reason: String? }
        var delta: Delta?
        var usage: Usage?
    }

    mutating func decode(_ event: ServerSentEventParser.Event) throws -> ModelEvent? {
        switch event.type {
        case "content_block_delta":
            let delta = try TextDeltaScanner.scan(event.data).map { BlockDelta.Delta(type: $0.type, text: $0.text) }
                ?? parse(BlockDelta.self, event).delta
            guard delta.type == "text_delta", let text = delta.text, !text.isEmpty else { return nil }
            return .text(text)
        case "message_start":
            if let reported = try parse(MessageStart.self, event).message.usage {
                usage.inputTokens = reported.input_tokens ?? usage.inputTokens
                usage.outputTokens = reported.output_tokens ?? usage.outputTokens
            }
            return nil
        case "message_delta":
            let delta = try parse(MessageDelta.self, event)
            stopReason = delta.delta?.stop_reason ?? stopReason
            usage.inputTokens = delta.usage?.input_tokens ?? usage.inputTokens
            usage.outputTokens = delta.usage?.output_tokens ?? usage.outputTokens
            return nil
        case "message_stop":
            sawMessageStop = true
            return .finished(stopReason: stopReason, usage: usage)
        case "error":
            var error = AnthropicErrorBody.providerError(from: Data(event.data.utf8), status: nil)
            error.usage = usage
            throw error
        default:
            return nil  // ping, content_block_start/stop, and types added after this was written
        }
    }

    private func parse<T: Decodable>(_ type: T.Type, _ event: ServerSentEventParser.Event) throws -> T {
        do {
            return try json.decode(T.self, from: Data(event.data.utf8))
        } catch {
            throw ProviderError(.upstream, "malformed \(event.type) event in the reply stream", usage: usage)
        }
    }
}

/// The API's error body: `{"type": "error", "error": {"type": "rate_limit_error", "message": "…"}}`.
enum AnthropicErrorBody {
    private struct Body: Decodable {
        struct Detail: Decodable {
            var type: String
            var message: String?
        }
        var error: Detail
    }

    static func providerError(from data: Data, status: Int?, retryAfter: Duration? = nil) -> ProviderError {
        let detail = try? JSONDecoder().decode(Body.self, from: data).error
        let kind = detail.flatMap { Self.kind(errorType: $0.type) } ?? status.map(kindForStatus) ?? .upstream
        let message = detail?.message ?? String(decoding: data.prefix(300), as: UTF8.self)
        return ProviderError(kind, message, status: status, retryAfter: retryAfter)
    }

    static func kind(errorType: String) -> ProviderError.Kind? {
        switch errorType {
        case "invalid_request_error": .invalidRequest
        case "authentication_error": .authentication
        case "permission_error": .permission
        case "not_found_error": .notFound
        case "request_too_large": .requestTooLarge
        case "rate_limit_error": .rateLimited
        case "api_error": .upstream
        case "overloaded_error": .overloaded
        case "timeout_error": .timeout
        default: nil
        }
    }

    static func kindForStatus(_ status: Int) -> ProviderError.Kind {
        switch status {
        case 400: .invalidRequest
        case 401: .authentication
        case 403: .permission
        case 404: .notFound
        case 413: .requestTooLarge
        case 429: .rateLimited
        case 504: .timeout
        case 529: .overloaded
        default: .upstream
        }
    }
}
