@testable import App
import AnthropicEmulator
import Foundation
import Logging
import Providers
import Testing
import VaporTesting

@Suite("Traces (OpenTelemetry)")
struct TracingTests {
    /// Runs `body` with a collector and an application that sends it its traces.
    private func withTracedApp(_ database: TestDatabase = .sqlite, settings: [String: String] = [:], logger: Logger? = nil,
                               _ body: (TestApp, OTLPCollector) async throws -> Void) async throws {
        let collector = try await OTLPCollector.start()
        do {
            try await withTestApp(database, settings: collector.settings().merging(settings) { $1 }, emulated: true, logger: logger) { t in
                try await body(t, collector)
            }
        } catch {
            await collector.shutdown()
            throw error
        }
        await collector.shutdown()
    }

    private func span(_ collector: OTLPCollector, named name: String, sourceLocation: SourceLocation = #_sourceLocation) async throws
        -> OTLPCollector.Span {
        try await waitUntil("the span \(name)", sourceLocation: sourceLocation) { collector.spans.contains { $0.name == name } }
        return try #require(collector.spans.first { $0.name == name }, sourceLocation: sourceLocation)
    }

    @Test("a reply is a `chat {model}` span after the GenAI conventions, inside the span of the request that started it; neither holds the text, the path or the token",
          arguments: TestDatabase.all)
    func reply(_ database: TestDatabase) async throws {
        try await withTracedApp(database) { t, collector in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Secret", " answer"], inputTokens: 42)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Traced", content: "my private question")
            let stored = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)

            let reply = try await span(collector, named: "chat claude-sonnet-5-5")
            #expect(reply.kind == 3, "a client span")
            #expect(reply.attributes["gen_ai.operation.name"] == "chat")
            #expect(reply.attributes["gen_ai.provider.name"] == "anthropic")
            #expect(reply.attributes["gen_ai.request.model"] == "claude-sonnet-5-5")
            #expect(reply.attributes["gen_ai.conversation.id"] == chat.id)
            #expect(reply.attributes["gen_ai.request.max_tokens"] == "\(t.settings.models.maxTokens)")
            #expect(reply.attributes["gen_ai.usage.input_tokens"] == "\(42 + (stored["cache_read_input_tokens"] as? Int ?? 0) + (stored["cache_creation_input_tokens"] as? Int ?? 0))")
            #expect(reply.attributes["gen_ai.usage.output_tokens"] == "\(stored["output_tokens"] as? Int ?? -1)")
            #expect(reply.attributes["gen_ai.response.finish_reasons"] == "[end_turn]")
            #expect(reply.attributes["chat_server.reply.status"] == "complete")
            #expect(reply.attributes["server.address"] == "127.0.0.1")
            #expect(reply.statusCode != 2)
            let first = try #require(reply.events.first { $0.name == "gen_ai.first_token" })
            #expect(Double(first.attributes["gen_ai.response.time_to_first_token"] ?? "") ?? -1 >= 0)
            #expect(reply.resource["service.name"] == "chat-server")

            let request = try await span(collector, named: "POST /api/chat")
            #expect(request.kind == 2, "a server span")
            #expect(request.traceID == reply.traceID && reply.parentSpanID == request.spanID, "the reply descends from the request")
            #expect(request.attributes["http.request.method"] == "POST")
            #expect(request.attributes["http.route"] == "/api/chat")
            #expect(request.attributes["http.response.status_code"] == "201")
            #expect(request.attributes["url.path"] == nil && request.attributes["url.query"] == nil)

            // Nothing a user wrote, nor their token, leaves for the collector.
            let sent = collector.posts.map { String(decoding: $0.body, as: UTF8.self) }.joined()
            for secret in ["my private question", "Secret", session.access, "Traced"] {
                #expect(!sent.contains(secret), "'\(secret.prefix(12))' was sent to the collector")
            }
        }
    }

    @Test("a caller's traceparent continues its trace; a malformed or oversized one starts a new trace, the request is served, and nothing of it (nor the token beside it) is logged")
    func traceparent() async throws {
        let logs = LogTests.CapturedLines()
        let logger = Logger(label: "chat-server") { label in JSONLogHandler(label: label, level: .debug, write: logs.write) }
        try await withTracedApp(logger: logger) { t, collector in
            let session = try await t.register()
            let trace = "4bf92f3577b34da6a3ce929d0e0e4736", parent = "00f067aa0ba902b7"
            let continued = try await t.send(.GET, "/api/chat/", token: session.access, headers: ["traceparent": "00-\(trace)-\(parent)-01"])
            #expect(continued.status == .ok)
            try await waitUntil("the continued span") { collector.spans.contains { $0.traceID == trace } }
            let span = try #require(collector.spans.first { $0.traceID == trace })
            #expect(span.name == "GET /api/chat" && span.parentSpanID == parent)

            let hostile = ["00-\(trace)-\(parent)", "zz-\(trace)-\(parent)-01", "00-" + String(repeating: "a", count: 8000) + "-\(parent)-01",
                           "00-00000000000000000000000000000000-\(parent)-01", "00-\(trace)-\(parent)-01\u{0}", "00-ÄÖÜ-ÄÖ-01"]
            for header in hostile {
                let before = collector.spans.count
                let response = try await t.send(.GET, "/api/chat/", token: session.access, headers: ["traceparent": header])
                #expect(response.status == .ok, "\(header.prefix(40))")
                try await waitUntil("the span of a request with a bad traceparent") { collector.spans.count > before }
            }
            let fresh = collector.spans.filter { $0.name == "GET /api/chat" && $0.traceID != trace }
            #expect(fresh.count >= hostile.count)
            #expect(fresh.allSatisfy { $0.parentSpanID.isEmpty && $0.traceID.count == 32 }, "each a new trace of its own")

            // Headers beside a traceparent stay out of the propagator's hands, and out of the log.
            let cookie = "session=" + UUID().uuidString
            let state = "vendor=" + String(repeating: "s", count: 600)
            for header in hostile + ["00-\(trace)-\(parent)-01"] {
                let response = try await t.send(.GET, "/api/chat/", token: session.access,
                                                headers: ["traceparent": header, "tracestate": state, "Cookie": cookie])
                #expect(response.status == .ok)
            }

            // A tracestate the propagator would refuse — logging it, and dropping the valid parent
            // beside it — is left out: the caller's trace goes on, and nothing is logged.
            let states = ["foo", "A=1", "a=1 ,b=2", "a=1\tb=2", "a@b@c=1", "t@" + String(repeating: "s", count: 15) + "=1",
                          "a=" + String(repeating: "v", count: 266), "a=1,  b=2", "k@sys=v,x=y=z", ",a=1"]
            for (number, state) in states.enumerated() {
                let traceID = String(repeating: String(number), count: 31) + "a"
                let response = try await t.send(.GET, "/api/chat/", token: session.access,
                                                headers: ["traceparent": "00-\(traceID)-\(parent)-01", "tracestate": state])
                #expect(response.status == .ok)
                try await waitUntil("the trace continued with the state '\(state.prefix(20))'") {
                    collector.spans.contains { $0.traceID == traceID && $0.parentSpanID == parent }
                }
            }
            for line in logs.all {
                #expect(!line.contains(session.access) && !line.contains(cookie), "a credential in the log: \(line.prefix(200))")
                #expect(!line.contains("aaaaaaaaaa") && !line.contains("ssssssssss"), "a hostile header in the log: \(line.prefix(200))")
            }
            #expect(!logs.all.contains { $0.contains("traceparent") }, "a refused traceparent is not logged")
        }
    }

    @Test("only a version-00 traceparent of the right shape, with ids not all zeros, reaches the propagator; a tracestate only beside it, as the propagator reads it, within 512 bytes")
    func traceContextHeaders() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        #expect(TraceContextHeaders.isWellFormed(parent: good))
        for bad in ["", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", good.uppercased(), "01" + good.dropFirst(2), good + "-",
                    "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                    "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                    "00-4bf92f3577b34da6a3ce929d0e0e47ä-00f067aa0ba902b7-01"] {
            #expect(!TraceContextHeaders.isWellFormed(parent: bad), "\(bad)")
        }
        let kept = TraceContextHeaders(HTTPHeaders([("traceparent", good), ("tracestate", "a=1"), ("Authorization", "Bearer secret")]))
        #expect(kept.traceparent == good && kept.tracestate == "a=1")
        #expect(!kept.description.contains("secret"))
        #expect(TraceContextHeaders(HTTPHeaders([("traceparent", good), ("tracestate", String(repeating: "x", count: 513))])).tracestate == nil)
        #expect(TraceContextHeaders(HTTPHeaders([("traceparent", good), ("tracestate", "a=\u{1}")])).tracestate == nil)
        #expect(TraceContextHeaders(HTTPHeaders([("tracestate", "a=1")])).tracestate == nil, "no state without a parent")
        for state in ["a=1", "a=1,b=2", "a=1,  b=2", "a=1 ,b=2", "k@sys=v", "a-b_c*d/e=x y", "a=", "", "a=b=c", "a=" + String(repeating: "v", count: 265)] {
            #expect(TraceContextHeaders.isWellFormed(state: state), "\(state)")
        }
        for state in ["A=1", ",a=1", "a=1\tb", "a@b@c=1", "t@" + String(repeating: "s", count: 15) + "=1", "a=" + String(repeating: "v", count: 266),
                      "a=é", "a=1\r\nb=2", String(repeating: "k", count: 266) + "=1", String(repeating: "t", count: 242) + "@s=1"] {
            #expect(!TraceContextHeaders.isWellFormed(state: state), "\(state)")
        }
    }

    @Test("retries are events of the reply's span; a failed reply's span says why, as an error")
    func retriesAndFailures() async throws {
        try await withTracedApp { t, collector in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.error(status: 529, type: "overloaded_error", message: "Overloaded"), .reply(Script.Reply(["Fine"])))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Retry", content: "Hello")
            try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            let retried = try await span(collector, named: "chat claude-sonnet-5-5")
            let retry = try #require(retried.events.first { $0.name == "retry" })
            #expect(retry.attributes["chat_server.retry"] == "1")
            #expect(retry.attributes["error.type"] == "overloaded")

            for _ in 0...t.settings.models.maxRetries { emulator.enqueue(.error(status: 400, type: "invalid_request_error", message: "No")) }
            let failing = try await t.sendMessage("Again", chat: chat.id, token: session.access)
            let stored = try await t.waitForReply(failing.assistant.id, chat: chat.id, token: session.access)
            #expect(stored["status"] as? String == "failed")
            try await waitUntil("the failed reply's span") { collector.spans.filter { $0.name == "chat claude-sonnet-5-5" }.count == 2 }
            let failed = try #require(collector.spans.last { $0.name == "chat claude-sonnet-5-5" })
            #expect(failed.statusCode == 2, "an error")
            #expect(failed.attributes["chat_server.reply.status"] == "failed")
            #expect(failed.attributes["error.type"] == "invalidRequest")
        }
    }

    @Test("each tool call is an `execute_tool {name}` span inside its reply's, its arguments and result left out")
    func toolCalls() async throws {
        let alpha = try await MCPToolServer.start(name: "alpha")
        defer { alpha.stop() }
        let collector = try await OTLPCollector.start()
        do {
            try await withToolApp(.sqlite, servers: [alpha], settings: collector.settings()) { t in
                let emulator = try #require(t.emulator)
                emulator.enqueue(.calling([.init(id: "call_1", name: modelName("alpha", "add"), arguments: #"{"a": 20417, "b": 3}"#)], saying: ["Adding."]),
                                 .reply(["It is", " 20420."]))
                let session = try await t.register()
                let chat = try await t.send(.POST, "/api/chat/", json: ["title": "Sums", "tools": ["alpha.*"]], token: session.access).jsonObject()
                let turn = try await t.sendMessage("What is 20417 + 3?", chat: chat.id, token: session.access)
                try await t.waitForReply(turn.assistant.id, chat: chat.id, token: session.access)
                let reply = try await span(collector, named: "chat claude-sonnet-5-5")
                let tool = try await span(collector, named: "execute_tool alpha.add")
                #expect(tool.parentSpanID == reply.spanID && tool.traceID == reply.traceID)
                #expect(tool.attributes["gen_ai.operation.name"] == "execute_tool" && tool.attributes["gen_ai.tool.name"] == "alpha.add")
                #expect(tool.attributes["gen_ai.tool.call.id"] == "call_1" && tool.attributes["chat_server.tool.server"] == "alpha")
                #expect(tool.statusCode != 2)
                #expect(reply.attributes["chat_server.request.tools"] != nil)
                let sent = collector.posts.map { String(decoding: $0.body, as: UTF8.self) }.joined()
                #expect(!sent.contains("20417") && !sent.contains("20420"), "no arguments, no result, no answer")
            }
        } catch {
            await collector.shutdown()
            throw error
        }
        await collector.shutdown()
    }

    @Test("a /v1/chat/completions request is a span with its model call inside, its first token an event of it")
    func completions() async throws {
        try await withTracedApp { t, collector in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(Script.Reply(["Hi"], inputTokens: 7)))
            let session = try await t.register()
            let response = try await t.send(.POST, "/v1/chat/completions", json: [
                "model": "claude-sonnet-5-5", "messages": [["role": "user", "content": "Hello"]],
            ], token: session.access)
            #expect(response.status == .ok, "\(response.body.string)")
            let call = try await span(collector, named: "chat claude-sonnet-5-5")
            let request = try await span(collector, named: "POST /v1/chat/completions")
            #expect(call.parentSpanID == request.spanID && call.traceID == request.traceID)
            #expect(call.attributes["gen_ai.usage.input_tokens"] == "7")
            #expect(call.attributes["gen_ai.usage.output_tokens"] != nil)
            #expect(call.attributes["gen_ai.conversation.id"] == nil, "no chat")
            #expect(call.attributes["chat_server.purpose"] == "completion")
            let first = try #require(call.events.first { $0.name == "gen_ai.first_token" })
            #expect(Double(first.attributes["gen_ai.response.time_to_first_token"] ?? "") ?? -1 >= 0)
        }
    }

    @Test("a chat's title is a model call of its own (purpose `title`) in the trace of the request whose reply it names, the title left out; one that fails for good is an error")
    func titles() async throws {
        try await withTracedApp(settings: ["TITLE_MODEL": "claude-haiku-5"]) { t, collector in
            let emulator = try #require(t.emulator)
            emulator.enqueueTitle(.reply(Script.Reply(["Lisbon", " in May"], inputTokens: 31)))
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, content: "Help me plan a trip")
            try await waitUntil("the title") { try await t.chat(chat.id, token: session.access)["title"] as? String == "Lisbon in May" }
            let title = try await span(collector, named: "chat claude-haiku-5")
            let reply = try await span(collector, named: "chat claude-sonnet-5-5")
            let request = try await span(collector, named: "POST /api/chat")
            #expect(title.kind == 3 && title.attributes["gen_ai.operation.name"] == "chat")
            #expect(title.attributes["chat_server.purpose"] == "title" && reply.attributes["chat_server.purpose"] == "reply")
            #expect(title.traceID == request.traceID && title.parentSpanID == request.spanID, "the request that started the reply")
            #expect(title.attributes["gen_ai.conversation.id"] == chat.id)
            #expect(title.attributes["gen_ai.request.model"] == "claude-haiku-5")
            #expect(title.attributes["gen_ai.usage.input_tokens"] == "31")
            #expect(title.attributes["chat_server.reply.status"] == "complete" && title.statusCode != 2)
            let sent = collector.posts.map { String(decoding: $0.body, as: UTF8.self) }.joined()
            #expect(!sent.contains("Lisbon") && !sent.contains("plan a trip"), "no question, no title")

            // Refused on every try: the span ends as an error, with the retries as its events.
            let tries = RetryPolicy().maxRetries + 1
            for _ in 0..<tries { emulator.enqueueTitle(.error(status: 529, type: "overloaded_error", message: "Overloaded")) }
            let unnamed = try await t.createChat(token: session.access, content: "Name me")
            try await waitUntil("the failed title's span") { collector.spans.filter { $0.name == "chat claude-haiku-5" }.count == 2 }
            let failed = try #require(collector.spans.last { $0.name == "chat claude-haiku-5" })
            #expect(failed.attributes["gen_ai.conversation.id"] == unnamed.id)
            #expect(failed.statusCode == 2 && failed.attributes["chat_server.reply.status"] == "failed")
            #expect(failed.attributes["error.type"] == "overloaded")
            #expect(failed.events.filter { $0.name == "retry" }.count == tries - 1)
        }
    }

    @Test("a collector that refuses or is away changes nothing a user sees; the server still stops", .timeLimit(.minutes(5)))
    func collectorAway() async throws {
        try await withTracedApp { t, collector in
            collector.refuse(true)
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Away", content: "Hello")
            let stored = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            #expect(stored["status"] as? String == "complete")
            try await waitUntil("an export refused") { !collector.posts.isEmpty }
        }
        // Nothing listens on the endpoint at all: the last spans cannot be sent at shutdown, which
        // gives up after its flush limit instead of holding the server (the time limit bounds a
        // hang; how long a loaded machine takes is not asserted).
        let gone = try await OTLPCollector.start()
        await gone.shutdown()
        try await withTestApp(.sqlite, settings: ["OTEL_EXPORTER_OTLP_ENDPOINT": gone.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "600000"],
                              emulated: true) { t in
            let session = try await t.register()
            let chat = try await t.createChat(token: session.access, title: "Nobody", content: "Hello")
            let stored = try await t.waitForReply(chat.messages[1].id, chat: chat.id, token: session.access)
            #expect(stored["status"] as? String == "complete")
        }
    }

    @Test("a call names its provider; the offline stand-in is `offline`, a model no provider offers (the call fails unmade) `unknown`")
    func upstreamNames() throws {
        let provider = try #require(try Settings(environment: TestSettings.environment(.sqlite).merging(
            ["ANTHROPIC_API_KEY": "k"]) { $1 }).models.providers.first)
        #expect(ModelCallTrace.Upstream.provider(provider).name == provider.name)
        #expect(ModelCallTrace.Upstream.offline.name == "offline")
        #expect(ModelCallTrace.Upstream(nil).name == "unknown")
    }

    @Test("tracing off: no collector named, no telemetry, no span made")
    func off() async throws {
        try await withTestApp(.sqlite, emulated: true) { t in
            let services = try t.services
            #expect(services.telemetry == nil)
            #expect(t.settings.tracing == nil)
        }
    }

    @Test("the OTLP settings: the spec's variables and meanings; hostile values are refused naming the variable")
    func settings() throws {
        func read(_ values: [String: String]) throws -> TracingSettings? {
            var environment = TestSettings.environment(.sqlite)
            environment.merge(values) { $1 }
            return try Settings(environment: environment).tracing
        }
        #expect(try read([:]) == nil)
        let base = try #require(try read(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"]))
        #expect(base.endpoint == "http://collector:4318/v1/traces" && base.encoding == .protobuf && base.serviceName == "chat-server")
        #expect(base.sampleRatio == 1 && base.exportDelay == .seconds(5) && base.headers.isEmpty)
        let full = try #require(try read([
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://otel.example.com/custom/path",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc, x-team = blue",
            "OTEL_SERVICE_NAME": "chat-eu", "OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_BSP_SCHEDULE_DELAY": "250",
        ]))
        #expect(full.endpoint == "https://otel.example.com/custom/path", "the per-signal endpoint as given")
        #expect(full.encoding == .json && full.serviceName == "chat-eu" && full.sampleRatio == 0.25 && full.exportDelay == .milliseconds(250))
        #expect(full.headers == ["authorization": "Bearer abc", "x-team": "blue"])

        let hostile: [(String, String)] = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "file:///etc/passwd"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"), ("OTEL_EXPORTER_OTLP_HEADERS", "a=b%0D%0AInjected: yes"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "bad name=1"), ("OTEL_EXPORTER_OTLP_HEADERS", "=value"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"), ("OTEL_TRACES_SAMPLER_ARG", "-0.1"), ("OTEL_TRACES_SAMPLER_ARG", "nan"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"), ("OTEL_BSP_SCHEDULE_DELAY", "0"), ("OTEL_BSP_SCHEDULE_DELAY", "99999999999999999999"),
            // 128 two-byte characters: 128 characters, 256 bytes, one over.
            ("OTEL_SERVICE_NAME", String(repeating: "é", count: 128)),
        ]
        for (key, value) in hostile {
            var values = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"]
            values[key] = value
            #expect(throws: SettingsError.self, "\(key)=\(value.prefix(30))") { try read(values) }
            do { _ = try read(values) } catch let error as SettingsError { #expect(error.key == key) }
        }
        #expect(try read(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SERVICE_NAME": String(repeating: "é", count: 127)])?.serviceName.utf8.count == 254)
    }
}
