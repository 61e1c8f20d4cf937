import Foundation
import NIOConcurrencyHelpers
import Providers
import Vapor

extension AnthropicEmulator {
    /// `GET /v1/models`: the same list for both APIs (`{"data": [{"id": …}]}` is each one's shape).
    static func listModels(_ req: Request, apiKey: String, state: NIOLockedValueBox<State>) -> Response {
        let presented = req.headers.first(name: "x-api-key") ?? req.headers.bearerAuthorization?.token
        guard presented == apiKey else { return openAIError(401, "invalid_api_key", "Incorrect API key provided") }
        guard let models = state.withLockedValue({ $0.models }) else { return openAIError(404, "not_found_error", "Not found") }
        let data = models.map { #"{"id":\#(jsonString($0)),"object":"model","type":"model","display_name":\#(jsonString($0)),"created":1700000000,"owned_by":"emulator"}"# }
        return Response(status: .ok, headers: ["Content-Type": "application/json"],
                        body: .init(string: #"{"object":"list","data":["# + data.joined(separator: ",") + "]}"))
    }

    /// `POST /v1/chat/completions`: the OpenAI Chat Completions API, answered from the same scripts as
    /// the Messages API — `chat.completion.chunk`s, `data: [DONE]`, usage when asked for.
    static func handleChatCompletion(_ req: Request, apiKey: String, state: NIOLockedValueBox<State>) async throws -> Response {
        var headers: [String: String] = [:]
        for (name, value) in req.headers { headers[name.lowercased()] = headers[name.lowercased()].map { $0 + ", " + value } ?? value }
        let body = req.body.data.map { Data($0.readableBytesView) } ?? Data()
        let json = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        let rawMessages = json?["messages"] as? [[String: Any]] ?? []
        let parsed = rawMessages.map { message in
            var content = OpenAIContent(message["content"])
            // A turn of calls alone, or a tool's result, stands for itself in the record.
            if content.text.isEmpty, message["tool_calls"] != nil { content.text = "[tool_calls]" }
            return (role: message["role"] as? String ?? "", content: content)
        }
        let all = parsed.map { (role: $0.role, content: $0.content.text) }
        let system = all.first?.role == "system" ? all.first?.content : nil
        let messages = system == nil ? all : Array(all.dropFirst())
        var recorded = RecordedRequest(headers: headers, model: json?["model"] as? String, system: system, maxTokens: json?["max_tokens"] as? Int,
                                       stream: json?["stream"] as? Bool, messages: messages, systemCached: false, cacheBreakpoints: [])
        recorded.api = "openai"
        recorded.attachments = (system == nil ? parsed : Array(parsed.dropFirst())).map(\.content.attachments)
        let includeUsage = (json?["stream_options"] as? [String: Any])?["include_usage"] as? Bool
        recorded.includeUsage = includeUsage
        recorded.temperature = json?["temperature"] as? Double
        recorded.stop = json?["stop"] as? [String] ?? []
        recorded.tools = (json?["tools"] as? [[String: Any]] ?? []).compactMap { ($0["function"] as? [String: Any])?["name"] as? String }
        recorded.toolChoice = json?["tool_choice"] as? String
        for message in rawMessages {
            for call in message["tool_calls"] as? [[String: Any]] ?? [] {
                let function = call["function"] as? [String: Any] ?? [:]
                let arguments = (function["arguments"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) }
                let input = arguments.flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) }
                    .map { String(decoding: $0, as: UTF8.self) } ?? "?"
                recorded.toolUses.append(RecordedToolUse(id: call["id"] as? String ?? "", name: function["name"] as? String ?? "", input: input))
            }
            if message["role"] as? String == "tool" {
                recorded.toolResults.append(RecordedToolResult(id: message["tool_call_id"] as? String ?? "",
                                                               content: message["content"] as? String ?? "", isError: false))
            }
        }
        let isTitle = system?.hasPrefix(ChatTitling.systemPrompt) == true
        let script: Script = state.withLockedValue { state in
            if isTitle {
                state.titleRequests.append(recorded)
                return state.titleScripts.isEmpty ? .reply(["Emulated", " title"]) : state.titleScripts.removeFirst()
            }
            if state.recordsRequests { state.requests.append(recorded) }
            if !state.scripts.isEmpty { return state.scripts.removeFirst() }
            return state.defaultScript ?? .reply(echo(messages.last?.content ?? ""))
        }
        guard headers["authorization"] == "Bearer \(apiKey)" else { return openAIError(401, "invalid_api_key", "Incorrect API key provided") }
        guard let model = recorded.model, !model.isEmpty, !messages.isEmpty,
              all.allSatisfy({ ["system", "user", "assistant", "tool"].contains($0.role) }) else {
            return openAIError(400, "invalid_request_error", "messages: invalid request")
        }
        switch script {
        case .error(let status, let type, let message, let extra):
            let response = openAIError(status, type, message)
            for (name, value) in extra { response.headers.replaceOrAdd(name: name, value: value) }
            return response
        case .hangBeforeHeaders:
            state.withLockedValue { $0.silent += 1 }
            await withCheckedContinuation { continuation in
                state.withLockedValue { $0.gate.hangs.append(continuation) }
            }
            return openAIError(503, "server_error", "Overloaded")
        case .reply(let reply):
            return chunkStream(reply, model: model, includeUsage: includeUsage == true && !reply.omitUsage,
                               state: state)
        }
    }

    /// A message's `content`: a string, or parts (`text`, `image_url` and `file` with data URLs).
    struct OpenAIContent {
        var text = ""
        var attachments: [RecordedAttachment] = []

        init(_ value: Any?) {
            if let string = value as? String {
                text = string
                return
            }
            for part in value as? [[String: Any]] ?? [] {
                switch part["type"] as? String {
                case "text": text += part["text"] as? String ?? ""
                case "image_url":
                    if let url = (part["image_url"] as? [String: Any])?["url"] as? String, let (type, data) = Self.dataURL(url) {
                        attachments.append(RecordedAttachment(kind: "image_url", mediaType: type, data: data))
                    }
                case "file":
                    let file = part["file"] as? [String: Any] ?? [:]
                    if let url = file["file_data"] as? String, let (type, data) = Self.dataURL(url) {
                        attachments.append(RecordedAttachment(kind: "file", mediaType: type, data: data, name: file["filename"] as? String))
                    }
                default: break
                }
            }
        }

        static func dataURL(_ url: String) -> (String, Data)? {
            guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ","),
                  let data = Data(base64Encoded: String(url[url.index(after: comma)...])) else { return nil }
            let type = url[url.index(url.startIndex, offsetBy: 5)..<comma].replacingOccurrences(of: ";base64", with: "")
            return (type, data)
        }
    }

    static func openAIError(_ status: Int, _ type: String, _ message: String) -> Response {
        Response(status: HTTPResponseStatus(statusCode: status), headers: ["Content-Type": "application/json"],
                 body: .init(string: #"{"error":{"message":\#(jsonString(message)),"type":"\#(type)","param":null,"code":"\#(type)"}}"#))
    }

    private static func chunkStream(_ reply: Script.Reply, model: String, includeUsage: Bool,
                                     state: NIOLockedValueBox<State>) -> Response {
        let headers: HTTPHeaders = ["Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"]
        return Response(status: .ok, headers: headers, body: .init(managedAsyncStream: { writer in
            var held = reply.coalesced ? "" : nil
            func send(_ data: String) async throws {
                let frame = "data: \(data)\n\n"
                if held != nil { held? += frame } else { try await writer.write(.buffer(ByteBuffer(string: frame))) }
            }
            func flushHeld() async throws {
                if let frames = held, !frames.isEmpty { try await writer.write(.buffer(ByteBuffer(string: frames))) }
                held = held.map { _ in "" }
            }
            func chunk(_ delta: String, finish: String? = nil) -> String {
                #"{"id":"chatcmpl-emulated","object":"chat.completion.chunk","created":1700000000,"model":\#(jsonString(model)),"choices":[{"index":0,"delta":\#(delta),"logprobs":null,"finish_reason":\#(finish.map { "\"\($0)\"" } ?? "null")}]}"#
            }
            try await send(chunk(#"{"role":"assistant","content":""}"#))
            if reply.includeUnusedEvents {
                // What a client must skip: a comment line, a chunk without choices, a field it does not know.
                if held != nil { held? += ": PROCESSING\n\n" } else { try await writer.write(.buffer(ByteBuffer(string: ": PROCESSING\n\n"))) }
                try await send(#"{"id":"chatcmpl-emulated","object":"chat.completion.chunk","choices":[],"system_fingerprint":"fp_emu"}"#)
            }
            // Reasoning pieces come `delay` apart, as the answer's do.
            func paced(_ number: Int) async throws {
                if number > 0, reply.delay > .zero, !reply.coalesced { try await Task.sleep(for: reply.delay) }
            }
            switch reply.reasoningStyle {
            case .reasoningContent:
                for (number, piece) in reply.reasoning.enumerated() {
                    try await paced(number)
                    try await send(chunk(#"{"reasoning_content":\#(jsonString(piece))}"#))
                }
            case .reasoningField:
                for (number, piece) in reply.reasoning.enumerated() {
                    try await paced(number)
                    try await send(chunk(#"{"reasoning":\#(jsonString(piece))}"#))
                }
            case .think:
                if !reply.reasoning.isEmpty {
                    let pieces = ["<thi", "nk>"] + reply.reasoning + ["</th", "ink>\n\n"]
                    for (number, piece) in pieces.enumerated() {
                        try await paced(number)
                        try await send(chunk(#"{"content":\#(jsonString(piece))}"#))
                    }
                }
            }
            for (number, piece) in reply.chunks.enumerated() {
                if reply.phaseLocked, reply.delay > .zero, !reply.coalesced {
                    try await Task.sleep(until: Self.nextBeat(every: reply.delay), tolerance: .zero)
                } else if number > 0, reply.delay > .zero, !reply.coalesced {
                    try await Task.sleep(for: reply.delay)
                }
                if number == reply.pauseAfter { try await flushHeld(); await waitAtGate(state) }
                let text = reply.stampChunks ? "t\(AnthropicEmulator.wallClockNanoseconds());" : piece
                try await send(chunk(#"{"content":\#(jsonString(text))}"#))
            }
            if reply.pauseAfter == reply.chunks.count { try await flushHeld(); await waitAtGate(state) }
            if let errorType = reply.errorAfterChunks {
                try await send(#"{"error":{"message":"emulated \#(errorType)","type":"\#(errorType)","code":null}}"#)
                try await flushHeld()
                return
            }
            if reply.endlessLineBytes > 0 {
                try await flushHeld()
                var sent = 0
                try await writer.write(.buffer(ByteBuffer(string: "data: ")))
                while sent < reply.endlessLineBytes {
                    try await writer.write(.buffer(ByteBuffer(repeating: UInt8(ascii: "x"), count: 16 * 1024)))
                    sent += 16 * 1024
                }
                return
            }
            if reply.malformedAfterChunks {
                try await send(#"{"id":"chatcmpl-emulated","choices":[{"index":0,"delta":{"content":"#)
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
            for (number, call) in reply.toolCalls.enumerated() {
                // The id and name first, then the arguments' JSON in two pieces.
                try await send(chunk(#"{"tool_calls":[{"index":\#(number),"id":\#(jsonString(call.id)),"type":"function","function":{"name":\#(jsonString(call.name)),"arguments":""}}]}"#))
                let half = call.arguments.index(call.arguments.startIndex, offsetBy: call.arguments.count / 2)
                for piece in [String(call.arguments[..<half]), String(call.arguments[half...])] {
                    try await send(chunk(#"{"tool_calls":[{"index":\#(number),"function":{"arguments":\#(jsonString(piece))}}]}"#))
                }
            }
            let finish = !reply.toolCalls.isEmpty ? "tool_calls" : reply.stopReason == "max_tokens" ? "length" : "stop"
            try await send(chunk("{}", finish: finish))
            if includeUsage {
                // As Anthropic's emulation counts them: the prompt's uncached tokens as the script says, a
                // token per chunk of text or reasoning.
                let prompt = reply.inputTokens + reply.cachedTokens, completion = reply.chunks.count + reply.reasoning.count
                try await send(#"{"id":"chatcmpl-emulated","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":\#(prompt),"completion_tokens":\#(completion),"total_tokens":\#(prompt + completion),"prompt_tokens_details":{"cached_tokens":\#(reply.cachedTokens)},"completion_tokens_details":{"reasoning_tokens":\#(reply.reasoning.count)}}}"#)
            }
            if !reply.omitDone { try await send("[DONE]") }
            try await flushHeld()
        }))
    }
}
