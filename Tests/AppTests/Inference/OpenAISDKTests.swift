import AnthropicEmulator
@testable import App
import Foundation
import Testing
import VaporTesting

/// The official OpenAI Python SDK (from PyPI) as a client of `/v1`: `Tests/OpenAI/sdk_client.py`.
enum OpenAISDK {
    static let unavailableReason: String? = Subprocess.succeeds(["python3", "-c", "import openai"])
        ? nil : "the openai Python package is not installed; the SDK test is skipped. Install it: python3 -m pip install openai"
    /// Set by CI, where a skipped run is a failure.
    static let required = ProcessInfo.processInfo.environment["REQUIRE_SCHEMA_FUZZING"] == "1"
    static var available: Bool { unavailableReason == nil }

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("OpenAI/sdk_client.py").path
    }
}

@Suite("The official OpenAI SDK against /v1")
struct OpenAISDKTests {
    @Test("the OpenAI Python SDK, unchanged, lists models and runs completions whole, streamed and with an image, with an API key; its errors are the SDK's own",
          .enabled(if: OpenAISDK.available || OpenAISDK.required, Comment(rawValue: OpenAISDK.unavailableReason ?? "")),
          arguments: TestDatabase.all)
    func sdk(_ database: TestDatabase) async throws {
        if let reason = OpenAISDK.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        try await withTestApp(database, settings: ["RATE_LIMIT_ENABLED": "false"], emulated: true) { t in
            let emulator = try #require(t.emulator)
            emulator.enqueue(.reply(["Bon", "jour, ", "monde"]), .reply(["Streamed", " reply"]), .reply(["A red", " pixel"]))
            let session = try await t.register()
            let key = try #require(try await t.makeKey(session)["key"] as? String)
            try await t.withLiveServer { base in
                let result = try await Subprocess.run(
                    ["python3", OpenAISDK.script],
                    environment: ["V1_BASE_URL": base + "/v1", "V1_API_KEY": key, "V1_MODEL": UpstreamAPI.anthropic.defaultModel],
                    timeout: .seconds(120))
                #expect(result.status == 0, "the SDK's checks:\n\(result.output.suffix(6_000))")
                #expect(result.output.contains("all checks passed"))
            }
            // What the SDK sent reached the model as it meant it.
            let requests = emulator.requests
            #expect(requests.count == 3)
            #expect(requests.first?.system == "Answer in French." && requests.first?.temperature == 0.5 && requests.first?.stop == ["END"])
            #expect(requests.last?.attachments.last?.first?.mediaType == "image/png")
            #expect(try await t.usageToday(session.access).replies == 3)
        }
    }
}
