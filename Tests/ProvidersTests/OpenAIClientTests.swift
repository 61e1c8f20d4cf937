import AnthropicEmulator
import Foundation
import Testing
@testable import Providers

/// What is particular to the Chat Completions wire: its request, reasoning in three shapes, usage
/// only when asked for (and sometimes never), finish reasons, and the models list.
@Suite("OpenAI-compatible client")
struct OpenAIClientTests {
    @Test("the request: bearer key, the system prompt first, max_tokens, streaming with usage asked for")
    func requestShape() async throws {
        try await withEmulatedProvider(.openai) { e in
            _ = await collect(e.client)

            let request = try #require(e.emulator.requests.first)
            #expect(request.api == "openai")
            #expect(request.headers["authorization"] == "Bearer \(e.emulator.apiKey)")
            #expect(request.headers["x-api-key"] == nil)
            #expect(request.headers["content-type"] == "application/json")
            #expect(request.model == "claude-sonnet-5-5")
            #expect(request.maxTokens == 256)
            #expect(request.stream == true)
            #expect(request.includeUsage == true)
            #expect(request.system == "Be brief.", "the system prompt goes as the first message, role system")
            #expect(request.messages.map(\.role) == ["user", "assistant", "user"])
            #expect(request.messages.map(\.content) == ["Hello", "Hi!", "How are you?"])
        }
    }

    @Test("a server that needs no key gets none; a relayed request names the instance that sent it")
    func noKeyAndRelayHeader() async throws {
        let emulator = try await AnthropicEmulator.start()
        let client = OpenAIClient(configuration: OpenAIConfiguration(baseURL: emulator.baseURL + "/v1/", apiKey: nil, relayID: "instance-1"))
        _ = await collect(client)
        let request = try #require(emulator.requests.first)
        #expect(request.headers["authorization"] == nil)
        #expect(request.headers[RelayHeader.name] == "instance-1")
        try await client.shutdown()
        await emulator.shutdown()
    }

    @Test("reasoning as reasoning_content, as reasoning, or in a leading <think> block is kept apart from the answer",
          arguments: [Script.ReasoningStyle.reasoningContent, .reasoningField, .think])
    func reasoningStyles(style: Script.ReasoningStyle) async throws {
        try await withEmulatedProvider(.openai) { e in
            var reply = Script.Reply(["The", " answer."], reasoning: ["First I", " think", " hard."])
            reply.reasoningStyle = style
            e.emulator.enqueue(.reply(reply))

            let collected = await collect(e.client)

            #expect(collected.error == nil)
            #expect(collected.reasoning.joined() == "First I think hard.")
            #expect(collected.text == "The answer.", "no tag, no reasoning and no white space after </think> in the answer")
            #expect(collected.finished?.usage == ModelUsage(inputTokens: 21, outputTokens: 5))
        }
    }

    @Test("usage: the prompt's cached tokens apart from the rest; none sent is none reported")
    func usage() async throws {
        try await withEmulatedProvider(.openai) { e in
            var cached = Script.Reply(["One"])
            cached.cachedTokens = 1_000
            var silent = Script.Reply(["Two"])
            silent.omitUsage = true
            e.emulator.enqueue(.reply(cached), .reply(silent))

            let first = await collect(e.client)
            #expect(first.finished?.usage == ModelUsage(inputTokens: 21, outputTokens: 1, cacheReadInputTokens: 1_000))
            #expect(first.usages.count == 1 && first.usages[0].final)

            let second = await collect(e.client)
            #expect(second.error == nil)
            #expect(second.text == "Two")
            #expect(second.finished?.usage == nil, "the server sent none: the caller estimates")
        }
    }

    @Test("finish_reason length is max_tokens; a stream closed after its finish_reason without [DONE] is complete")
    func finishReasons() async throws {
        try await withEmulatedProvider(.openai) { e in
            var noDone = Script.Reply(["Complete", " enough"])
            noDone.omitDone = true
            e.emulator.enqueue(.reply(Script.Reply(["Cut"], stopReason: "max_tokens")), .reply(noDone))

            #expect(await collect(e.client).finished?.stopReason == "max_tokens")
            let second = await collect(e.client)
            #expect(second.error == nil)
            #expect(second.text == "Complete enough")
            #expect(second.finished?.stopReason == "end_turn")
        }
    }

    @Test("the models list: what the server lists, without names no model id can hold")
    func modelsList() async throws {
        try await withEmulatedProvider(.openai) { e in
            let long = String(repeating: "m", count: ModelListLimits.nameBytes + 1)
            e.emulator.setModels(["llama3.2", "meta-llama/llama-3.1-8b", "", "two words", long, "bell\u{7}", "llama3.2"])
            let listed = try await e.client.listModels(timeout: .seconds(5))
            #expect(listed == ["llama3.2", "meta-llama/llama-3.1-8b"])
        }
        let closed = OpenAIClient(configuration: OpenAIConfiguration(baseURL: "http://127.0.0.1:9/v1"))
        await #expect(throws: ProviderError.self) { try await closed.listModels(timeout: .seconds(5)) }
        try await closed.shutdown()
    }
}

extension OpenAIClientTests {
    @Test("a line that never ends fails the reply at the size a client holds, keeping the text before it")
    func endlessLine() async throws {
        let emulator = try await AnthropicEmulator.start()
        let client = OpenAIClient(configuration: OpenAIConfiguration(baseURL: emulator.baseURL + "/v1", apiKey: emulator.apiKey,
                                                                     settings: ClientSettings(maxEventBytes: 64 * 1024)))
        var reply = Script.Reply(["Before", " the flood"])
        reply.endlessLineBytes = 256 * 1024
        emulator.enqueue(.reply(reply))
        let collected = await collect(client)
        #expect(collected.text == "Before the flood")
        #expect(collected.providerError?.kind == .upstream)
        #expect(collected.providerError?.message.contains("grew past 65536 bytes") == true)
        try await client.shutdown()
        await emulator.shutdown()
    }
}

@Suite("A leading <think> block")
struct ThinkSplitterTests {
    private func split(_ pieces: [String]) -> (reasoning: String, answer: String) {
        var splitter = ThinkSplitter()
        var reasoning = "", answer = ""
        let emit: (ModelStreamEvent) -> Void = { event in
            switch event {
            case .reasoning(let text): reasoning += text
            case .text(let text): answer += text
            default: break
            }
        }
        for piece in pieces { splitter.feed(piece, emit: emit) }
        splitter.finish(emit: emit)
        return (reasoning, answer)
    }

    @Test("wherever the pieces split the tags, the reasoning and the answer come out whole")
    func everySplit() {
        let whole = "\n<think>\nWeigh a < b and </thin k>.\n</think>\n\nThe answer: <think>kept</think>"
        let characters = Array(whole)
        for first in 0..<characters.count {
            for second in stride(from: first, to: characters.count, by: 5) {
                let pieces = [String(characters[..<first]), String(characters[first..<second]), String(characters[second...])]
                let (reasoning, answer) = split(pieces)
                #expect(reasoning == "\nWeigh a < b and </thin k>.\n", "split at \(first), \(second)")
                #expect(answer == "The answer: <think>kept</think>", "only a leading block is reasoning")
            }
        }
    }

    @Test("an answer without a leading block goes out as it comes, a lookalike included")
    func noBlock() {
        #expect(split(["Plain", " text"]) == ("", "Plain text"))
        #expect(split(["<thi", "s is not", " a tag"]) == ("", "<this is not a tag"))
        #expect(split(["  <b>bold</b>"]) == ("", "  <b>bold</b>"))
        #expect(split(["<thi"]) == ("", "<thi"), "a stream that ends inside a would-be tag keeps it as text")
    }

    @Test("a block never closed is all reasoning; a block with nothing after it leaves no answer")
    func unclosed() {
        #expect(split(["<think>still", " thinking</th"]) == ("still thinking</th", ""))
        #expect(split(["<think>done</think>", "\n\n"]) == ("done", ""))
    }
}
