import Foundation
import NIOConcurrencyHelpers
import Providers
import Vapor

extension AnthropicEmulator {
    /// `POST /v1/messages`: checks the request as the API does, records it, answers from the script.
    static func handle(_ req: Request, apiKey: String, state: NIOLockedValueBox<State>) async throws -> Response {
        var headers: [String: String] = [:]
        for (name, value) in req.headers { headers[name.lowercased()] = headers[name.lowercased()].map { $0 + ", " + value } ?? value }
        let body = req.body.data.map { Data($0.readableBytesView) } ?? Data()
        let json = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        let parsedMessages = (json?["messages"] as? [[String: Any]] ?? []).map { message in
            (role: message["role"] as? String ?? "", content: Content(message["content"]))
        }
        let messages = parsedMessages.map { (role: $0.role, content: $0.content.text) }
        if let problem = parsedMessages.compactMap(\.content.problem).first {
            return errorResponse(400, "invalid_request_error", problem)
        }
        let system = json?["system"].map { Content($0) }
        var recorded = RecordedRequest(
            headers: headers, model: json?["model"] as? String, system: system?.text,
            maxTokens: json?["max_tokens"] as? Int, stream: json?["stream"] as? Bool, messages: messages,
            systemCached: system?.cached ?? false,
            cacheBreakpoints: parsedMessages.indices.filter { parsedMessages[$0].content.cached }
        )
        recorded.thinkingBudget = (json?["thinking"] as? [String: Any])?["budget_tokens"] as? Int
        recorded.temperature = json?["temperature"] as? Double
        recorded.stop = json?["stop_sequences"] as? [String] ?? []
        recorded.attachments = parsedMessages.map(\.content.attachments)
        recorded.tools = (json?["tools"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        recorded.toolChoice = (json?["tool_choice"] as? [String: Any])?["type"] as? String
        recorded.toolUses = parsedMessages.flatMap(\.content.toolUses)
        recorded.toolResults = parsedMessages.flatMap(\.content.toolResults)
        if !recorded.toolUses.isEmpty || !recorded.toolResults.isEmpty, recorded.tools.isEmpty {
            return errorResponse(400, "invalid_request_error", "Requests which include `tool_use` or `tool_result` blocks must define tools.")
        }

        // Prompt caching as the API does it: the prompt up to the last breakpoint is written to the
        // cache; the longest prefix written before — at that breakpoint or at an earlier message
        // boundary, up to 20 back — is read from it, and only the rest is written (usage counts
        // reads and writes apart).
        func boundary(through index: Int) -> String {
            ([recorded.system ?? ""] + messages.prefix(index + 1).map { "\($0.role):\($0.content)" }).joined(separator: "\u{1}")
        }
        let prefix = recorded.cacheBreakpoints.last.map(boundary(through:)) ?? (recorded.systemCached ? recorded.system : nil)
        let lookback = recorded.cacheBreakpoints.last.map { last in
            stride(from: last, through: max(-1, last - 20), by: -1).map { $0 < 0 ? (recorded.system ?? "") : boundary(through: $0) }
        } ?? []
        let totalTokens = estimatedTokens(([recorded.system ?? ""] + messages.map(\.content)).joined())
        let isTitle = recorded.system?.hasPrefix(ChatTitling.systemPrompt) == true
        let (script, cache): (Script, CacheUse) = state.withLockedValue { state in
            if isTitle {
                state.titleRequests.append(recorded)
                return (state.titleScripts.isEmpty ? .reply(["Emulated", " title"]) : state.titleScripts.removeFirst(), CacheUse())
            }
            if state.recordsRequests { state.requests.append(recorded) }
            var cache = CacheUse()
            if let prefix {
                let tokens = min(estimatedTokens(prefix), totalTokens)
                let hit = ([prefix] + lookback).first(where: state.cachedPrefixes.contains)
                cache.read = hit.map { min(estimatedTokens($0), tokens) } ?? 0
                cache.created = tokens - cache.read
                state.cachedPrefixes.insert(prefix)
            }
            if !state.scripts.isEmpty { return (state.scripts.removeFirst(), cache) }
            return (state.defaultScript ?? .reply(echo(messages.last?.content ?? "")), cache)
        }

        let presentedKey = headers["x-api-key"] ?? headers["authorization"].map { $0.replacingOccurrences(of: "Bearer ", with: "") }
        guard presentedKey == apiKey else {
            return errorResponse(401, "authentication_error", "invalid x-api-key")
        }
        guard headers["anthropic-version"] != nil else {
            return errorResponse(400, "invalid_request_error", "anthropic-version: header is required")
        }
        guard let model = recorded.model, !model.isEmpty, let maxTokens = recorded.maxTokens, maxTokens > 0,
              !messages.isEmpty, messages.allSatisfy({ ["user", "assistant"].contains($0.role) && !$0.content.isEmpty }),
              messages.first?.role == "user"
        else {
            return errorResponse(400, "invalid_request_error", "messages: invalid request")
        }

        switch script {
        case .error(let status, let type, let message, let extra):
            let response = errorResponse(status, type, message)
            for (name, value) in extra { response.headers.replaceOrAdd(name: name, value: value) }
            return response
        case .hangBeforeHeaders:
            state.withLockedValue { $0.silent += 1 }
            await withCheckedContinuation { continuation in
                state.withLockedValue { $0.gate.hangs.append(continuation) }
            }
            return errorResponse(529, "overloaded_error", "Overloaded")
        case .reply(let reply):
            return streamResponse(reply, model: model, cache: cache, state: state)
        }
    }

    /// The default answer: "Echo: <what the user said>", a word at a time.
    static func echo(_ text: String) -> Script.Reply {
        var chunks: [String] = []
        for word in ("Echo: " + text).split(separator: " ", omittingEmptySubsequences: false) {
            chunks.append(chunks.isEmpty ? String(word) : " " + word)
        }
        return Script.Reply(chunks)
    }

    static func errorResponse(_ status: Int, _ type: String, _ message: String) -> Response {
        let body = #"{"type":"error","error":{"type":"\#(type)","message":"\#(message)"},"request_id":"req_emulated"}"#
        return Response(
            status: HTTPResponseStatus(statusCode: status),
            headers: ["Content-Type": "application/json", "request-id": "req_emulated"],
            body: .init(string: body)
        )
    }

    /// Prompt tokens read from the cache and written to it by one request.
    struct CacheUse {
        var read = 0
        var created = 0
    }

    /// Text as the API reads a `system` or message `content`: a string, or text blocks, any of which
    /// may carry `cache_control`.
    struct Content {
        var text: String
        var cached: Bool
        /// Image and document blocks, as sent.
        var attachments: [RecordedAttachment] = []
        /// What the API would refuse in these blocks.
        var problem: String?
        var toolUses: [RecordedToolUse] = []
        var toolResults: [RecordedToolResult] = []

        init(_ value: Any?) {
            if let string = value as? String {
                (text, cached) = (string, false)
            } else if let blocks = value as? [[String: Any]] {
                text = blocks.compactMap { $0["type"] as? String == "text" ? $0["text"] as? String : nil }.joined()
                cached = blocks.contains { ($0["cache_control"] as? [String: Any])?["type"] as? String == "ephemeral" }
                for block in blocks {
                    let type = block["type"] as? String ?? ""
                    if type == "tool_use" {
                        let input = (try? JSONSerialization.data(withJSONObject: block["input"] ?? [:], options: [.sortedKeys]))
                            .map { String(decoding: $0, as: UTF8.self) } ?? "?"
                        toolUses.append(RecordedToolUse(id: block["id"] as? String ?? "", name: block["name"] as? String ?? "", input: input))
                        if text.isEmpty { text = "[tool_use]" }
                    }
                    if type == "tool_result" {
                        guard let content = block["content"] as? String, !content.isEmpty else {
                            problem = "tool_result content must be a non-empty string here"
                            continue
                        }
                        toolResults.append(RecordedToolResult(id: block["tool_use_id"] as? String ?? "", content: content,
                                                              isError: block["is_error"] as? Bool ?? false))
                        if text.isEmpty { text = "[tool_result]" }
                    }
                    if type == "thinking", (block["signature"] as? String)?.isEmpty != false { problem = "thinking blocks must be signed" }
                    if type == "text", (block["text"] as? String)?.isEmpty != false { problem = "text content blocks must be non-empty" }
                    guard type == "image" || type == "document" else { continue }
                    let source = block["source"] as? [String: Any] ?? [:]
                    guard source["type"] as? String == "base64", let encoded = source["data"] as? String, let data = Data(base64Encoded: encoded) else {
                        problem = "\(type) source must be valid base64"
                        continue
                    }
                    let mediaType = source["media_type"] as? String ?? ""
                    if type == "image", data.count > 5 << 20 { problem = "image exceeds 5 MB maximum" }
                    if type == "image", !["image/png", "image/jpeg", "image/gif", "image/webp"].contains(mediaType) {
                        problem = "unsupported image media type \(mediaType)"
                    }
                    if type == "document", mediaType != "application/pdf" { problem = "unsupported document media type \(mediaType)" }
                    attachments.append(RecordedAttachment(kind: type, mediaType: mediaType, data: data, name: block["title"] as? String))
                }
            } else {
                (text, cached) = ("", false)
            }
        }
    }

    /// The emulator's token count: four characters a token, at least one.
    static func estimatedTokens(_ text: String) -> Int { max(1, text.count / 4) }

    private static func streamResponse(_ reply: Script.Reply, model: String, cache: CacheUse, state: NIOLockedValueBox<State>) -> Response {
        let headers: HTTPHeaders = [
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            "request-id": "req_emulated", "anthropic-organization-id": "org-emulated",
        ]
        return Response(status: .ok, headers: headers, body: .init(managedAsyncStream: { writer in
            // Coalesced: every event goes into one write at the end, as a proxy or a fast link may deliver them.
            var held = reply.coalesced ? "" : nil
            func send(_ event: String, _ data: String) async throws {
                let frame = "event: \(event)\ndata: \(data)\n\n"
                if held != nil { held? += frame } else { try await writer.write(.buffer(ByteBuffer(string: frame))) }
            }
            func flushHeld() async throws {
                if let frames = held, !frames.isEmpty { try await writer.write(.buffer(ByteBuffer(string: frames))) }
                held = held.map { _ in "" }
            }
            let usage = #""input_tokens":\#(reply.inputTokens),"cache_read_input_tokens":\#(cache.read),"cache_creation_input_tokens":\#(cache.created),"output_tokens":1"#
            try await send("message_start", #"{"type":"message_start","message":{"id":"msg_emulated","type":"message","role":"assistant","content":[],"model":"\#(model)","stop_reason":null,"stop_sequence":null,"usage":{\#(usage)}}}"#)
            var index = 0
            if !reply.reasoning.isEmpty {
                // Extended thinking: a thinking block, signed, before the answer.
                try await send("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#)
                for (number, piece) in reply.reasoning.enumerated() {
                    if number > 0, reply.delay > .zero, !reply.coalesced { try await Task.sleep(for: reply.delay) }
                    try await send("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":\#(jsonString(piece))}}"#)
                }
                try await send("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}"#)
                try await send("content_block_stop", #"{"type":"content_block_stop","index":0}"#)
                index += 1
            }
            if reply.includeUnusedEvents {
                // What a client must skip: a block type and a delta type it does not know, an event type added later.
                try await send("content_block_start", #"{"type":"content_block_start","index":\#(index),"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix"}}"#)
                try await send("content_block_delta", #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"future_delta","detail":"skip"}}"#)
                try await send("content_block_stop", #"{"type":"content_block_stop","index":\#(index)}"#)
                try await send("future_event_type", #"{"type":"future_event_type","detail":"clients must skip this"}"#)
                index += 1
            }
            try await send("content_block_start", #"{"type":"content_block_start","index":\#(index),"content_block":{"type":"text","text":""}}"#)
            try await send("ping", #"{"type": "ping"}"#)
            for (number, chunk) in reply.chunks.enumerated() {
                if reply.phaseLocked, reply.delay > .zero, !reply.coalesced {
                    try await Task.sleep(until: Self.nextBeat(every: reply.delay), tolerance: .zero)
                } else if number > 0, reply.delay > .zero, !reply.coalesced {
                    try await Task.sleep(for: reply.delay)
                }
                if number == reply.pauseAfter { try await flushHeld(); await waitAtGate(state) }
                let text = reply.stampChunks ? "t\(AnthropicEmulator.wallClockNanoseconds());" : chunk
                try await send("content_block_delta", #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"text_delta","text":\#(jsonString(text))}}"#)
            }
            if reply.pauseAfter == reply.chunks.count { try await flushHeld(); await waitAtGate(state) }
            if let errorType = reply.errorAfterChunks {
                try await send("error", #"{"type":"error","error":{"type":"\#(errorType)","message":"emulated \#(errorType)"}}"#)
                try await flushHeld()
                return
            }
            if reply.malformedAfterChunks {
                try await send("content_block_delta", #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"text_delta","text":"#)
                try await flushHeld()
                return
            }
            if reply.hangAfterChunks {
                try await flushHeld()
                state.withLockedValue { $0.silent += 1 }
                await withCheckedContinuation { continuation in
                    state.withLockedValue { $0.gate.hangs.append(continuation) }
                }
                return
            }
            if reply.endAbruptly {
                try await flushHeld()
                return
            }
            try await send("content_block_stop", #"{"type":"content_block_stop","index":\#(index)}"#)
            for call in reply.toolCalls {
                // A tool_use block, its input in two pieces of JSON.
                index += 1
                try await send("content_block_start", #"{"type":"content_block_start","index":\#(index),"content_block":{"type":"tool_use","id":\#(jsonString(call.id)),"name":\#(jsonString(call.name)),"input":{}}}"#)
                let half = call.arguments.index(call.arguments.startIndex, offsetBy: call.arguments.count / 2)
                for piece in [String(call.arguments[..<half]), String(call.arguments[half...])] {
                    try await send("content_block_delta", #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"input_json_delta","partial_json":\#(jsonString(piece))}}"#)
                }
                try await send("content_block_stop", #"{"type":"content_block_stop","index":\#(index)}"#)
            }
            let stopReason = reply.toolCalls.isEmpty ? reply.stopReason : "tool_use"
            try await send("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"\#(stopReason)","stop_sequence":null},"usage":{"output_tokens":\#(reply.chunks.count + reply.reasoning.count + reply.toolCalls.count)}}"#)
            try await send("message_stop", #"{"type":"message_stop"}"#)
            try await flushHeld()
        }))
    }

    static func waitAtGate(_ state: NIOLockedValueBox<State>) async {
        await withCheckedContinuation { continuation in
            let open = state.withLockedValue { state in
                if state.gate.isOpen { return true }
                state.gate.waiters.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }

    private static let beatOrigin = ContinuousClock.now

    /// The next instant that is a whole number of `period`s after the process's first reply.
    static func nextBeat(every period: Duration) -> ContinuousClock.Instant {
        let elapsed = ContinuousClock.now - beatOrigin
        let beats = Int((elapsed / period).rounded(.down)) + 1
        return beatOrigin + period * beats
    }

    /// Nanoseconds since 1970 by the system's real-time clock, comparable across processes.
    public static func wallClockNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    static func jsonString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}
