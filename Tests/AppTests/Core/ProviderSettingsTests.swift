@testable import App
import Foundation
import Testing

@Suite("Provider settings")
struct ProviderSettingsTests {
    private let production = ["SECRET_KEY": TestSettings.secretKey, "ALLOWED_HOSTS": "chat.example.com"]

    private func settings(_ overrides: [String: String]) throws -> Settings {
        try Settings(environment: production.merging(overrides) { $1 })
    }

    private func error(_ overrides: [String: String]) -> SettingsError? {
        do {
            _ = try settings(overrides)
            return nil
        } catch {
            return error as? SettingsError
        }
    }

    @Test("one OpenAI-compatible server, several named ones, and Anthropic, each read from its own settings")
    func providers() throws {
        let read = try settings([
            "ANTHROPIC_API_KEY": "sk-ant", "OPENAI_API_KEY": "sk-oai", "PROVIDERS": "ollama, open-router",
            "PROVIDER_OLLAMA_API": "openai", "PROVIDER_OLLAMA_BASE_URL": "http://localhost:11434/v1/",
            "PROVIDER_OPEN_ROUTER_API": "OpenAI", "PROVIDER_OPEN_ROUTER_BASE_URL": "https://openrouter.ai/api/v1",
            "PROVIDER_OPEN_ROUTER_API_KEY": "sk-or", "PROVIDER_OPEN_ROUTER_MODELS": "meta-llama/llama-3.1-8b,qwen/qwen3",
        ]).models
        #expect(read.providers.map(\.name) == ["anthropic", "openai", "ollama", "open-router"])
        #expect(read.providers[1].baseURL == "https://api.openai.com/v1", "the default when only the key is set")
        #expect(read.providers[2].apiKey == nil, "a local server needs no key")
        #expect(read.providers[2].models == nil, "discovered")
        #expect(read.providers[3].models == ["meta-llama/llama-3.1-8b", "qwen/qwen3"])
        #expect(read.providers[3].id(of: "qwen/qwen3") == "open-router/qwen/qwen3")
        #expect(read.providers[0].id(of: "claude-sonnet-5-5") == "claude-sonnet-5-5")
        #expect(read.defaultModel == "claude-sonnet-5-5")
        #expect(try settings(["OPENAI_BASE_URL": "http://localhost:8080/v1"]).models.defaultModel == nil, "the first model known")
        #expect(try settings([:]).models.providers.isEmpty, "offline")
    }

    @Test("a provider setting that cannot work stops start-up, naming its key", arguments: [
        (["PROVIDERS": "openai"], "PROVIDERS", "reserved"),
        (["PROVIDERS": "anthropic"], "PROVIDERS", "reserved"),
        (["PROVIDERS": "offline"], "PROVIDERS", "reserved"),
        (["PROVIDERS": "Big Provider"], "PROVIDERS", "not a provider name"),
        (["PROVIDERS": String(repeating: "p", count: 33)], "PROVIDERS", "not a provider name"),
        (["PROVIDERS": "a,a", "PROVIDER_A_API": "openai", "PROVIDER_A_BASE_URL": "http://h/v1"], "PROVIDERS", "twice"),
        (["PROVIDERS": "local"], "PROVIDER_LOCAL_API", "required"),
        (["PROVIDERS": "local", "PROVIDER_LOCAL_API": "gemini"], "PROVIDER_LOCAL_API", "openai or anthropic"),
        (["PROVIDERS": "local", "PROVIDER_LOCAL_API": "openai"], "PROVIDER_LOCAL_BASE_URL", "required"),
        (["PROVIDERS": "local", "PROVIDER_LOCAL_API": "openai", "PROVIDER_LOCAL_BASE_URL": "file:///etc/passwd"], "PROVIDER_LOCAL_BASE_URL", "http"),
        (["PROVIDERS": "claude", "PROVIDER_CLAUDE_API": "anthropic"], "PROVIDER_CLAUDE_API_KEY", "required"),
        (["OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"], "OPENAI_BASE_URL", "this server"),
        (["OPENAI_BASE_URL": "http://localhost:8000/v1/"], "OPENAI_BASE_URL", "this server"),
        (["PUBLIC_URL": "https://chat.example.com", "PROVIDERS": "me", "PROVIDER_ME_API": "openai",
          "PROVIDER_ME_BASE_URL": "https://chat.example.com/v1"], "PROVIDER_ME_BASE_URL", "this server"),
        (["MODEL_CAPABILITIES": "m=vision+telepathy"], "MODEL_CAPABILITIES", "not a capability"),
        (["MODEL_CAPABILITIES": "just-a-name"], "MODEL_CAPABILITIES", "model="),
        (["MODEL_CONTEXT_WINDOWS": "m=12"], "MODEL_CONTEXT_WINDOWS", "whole number"),
        (["MODEL_CONTEXT_WINDOWS": "m=99999999999999999999"], "MODEL_CONTEXT_WINDOWS", "whole number"),
        (["ANTHROPIC_THINKING": "claude-sonnet-5-5=100"], "ANTHROPIC_THINKING", "from 1024"),
        (["MODEL_MAX_TOKENS": "300000"], "MODEL_MAX_TOKENS", "smaller than every context window"),
        (["MODEL_MAX_RETRIES": "11"], "MODEL_MAX_RETRIES", "between"),
        (["MODELS_REFRESH_INTERVAL": "often"], "MODELS_REFRESH_INTERVAL", "duration"),
    ] as [([String: String], String, String)])
    func refused(_ case: ([String: String], String, String)) {
        let (environment, key, problem) = `case`
        let error = error(environment)
        #expect(error?.key == key, "\(environment)")
        #expect(error?.problem.contains(problem) == true, "\(String(describing: error))")
    }

    @Test("settings for every provider are MODEL_*; the ANTHROPIC_* names they had still work, the new name winning")
    func modelSettingsAliases() throws {
        #expect(try settings(["ANTHROPIC_MAX_RETRIES": "5"]).models.maxRetries == 5)
        #expect(try settings(["MODEL_MAX_RETRIES": "4", "ANTHROPIC_MAX_RETRIES": "5"]).models.maxRetries == 4)
        #expect(try settings(["ANTHROPIC_IDLE_TIMEOUT": "9s"]).models.idleTimeout == .seconds(9))
        #expect(try settings(["MODEL_MAX_TOKENS": "1000"]).models.maxTokens == 1000)
        #expect(error(["ANTHROPIC_MAX_TOKENS": "300000"])?.key == "ANTHROPIC_MAX_TOKENS", "the error names the key that was set")
    }
}
