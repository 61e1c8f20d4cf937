import Foundation
import Providers

/// The model providers and what is known of their models, from the settings: Anthropic
/// (`ANTHROPIC_*`), one OpenAI-compatible server (`OPENAI_*`), and any number more (`PROVIDERS`,
/// `PROVIDER_<NAME>_*`); per-model capabilities, context windows and thinking budgets; the default
/// model; and how replies are asked for (tokens, retries, timeouts). Without any provider the
/// offline one answers.
public struct ModelSettings: Sendable {
    public enum API: String, Sendable {
        case anthropic
        case openai
    }

    /// A provider to reach.
    public struct Provider: Sendable, Equatable {
        /// What model ids start with (`<name>/<model>`), unless ``plainIDs``.
        public var name: String
        public var api: API
        /// Anthropic: the root (as `ANTHROPIC_BASE_URL`); OpenAI: the URL that ends before `/chat/completions`.
        public var baseURL: String
        public var apiKey: String?
        /// The models offered; nil: those its models endpoint lists, discovered in the background.
        public var models: [String]?
        /// Model ids without the provider's name (the provider `ANTHROPIC_*` configures).
        public var plainIDs: Bool
        public var authScheme: AnthropicConfiguration.AuthScheme
        public var version: String

        /// The id chats use for `model` of this provider.
        public func id(of model: String) -> String { plainIDs ? model : name + "/" + model }
    }

    /// A capability a model may have (`MODEL_CAPABILITIES`).
    public enum Capability: String, Sendable, CaseIterable {
        case vision, documents, tools, reasoning
    }

    public var providers: [Provider]
    /// `DEFAULT_MODEL`, else `ANTHROPIC_MODEL` where Anthropic is configured; nil: the first model known.
    public var defaultModel: String?
    /// By model id; a model not listed has its provider's defaults (Anthropic: vision, documents, tools).
    public var capabilities: [String: Set<Capability>]
    /// Tokens a model's context holds (prompt and reply), by model id.
    public var contextWindows: [String: Int]
    /// Anthropic's models, when not listed: `ANTHROPIC_CONTEXT_WINDOW`.
    public var anthropicContextWindow: Int
    /// Extended thinking budgets, by model id (`ANTHROPIC_THINKING`).
    public var thinkingBudgets: [String: Int]
    /// `max_tokens` of each reply.
    public var maxTokens: Int
    public var promptCaching: Bool
    public var maxRetries: Int
    public var connectTimeout: Duration
    public var firstByteTimeout: Duration
    public var idleTimeout: Duration
    /// How often the providers' models are listed again (and their reachability checked).
    public var refreshInterval: Duration
    /// The pause between words of the offline provider's reply.
    public var offlineWordDelay: Duration
    /// The model that names chats made without a title (a cheap one will do); nil: the chat's own.
    public var titleModel: String?

    /// Names `PROVIDERS` may not use.
    static let reservedNames: Set<String> = ["anthropic", "openai", "offline"]
    /// How a conversation is fitted to a model whose context window nobody gave.
    static let unknownContextWindow = 8_192

    /// `publicURL` is the server's own address as `Settings` read it (`PUBLIC_URL`).
    init(_ read: SettingsReader, port: Int, publicURL: String) throws(SettingsError) {
        var providers: [Provider] = []
        let anthropicModel = read.string("ANTHROPIC_MODEL") ?? "claude-sonnet-5-5"
        let scheme = read.string("ANTHROPIC_AUTH_SCHEME") ?? "x-api-key"
        guard let authScheme = AnthropicConfiguration.AuthScheme(rawValue: scheme.lowercased()) else {
            throw SettingsError(key: "ANTHROPIC_AUTH_SCHEME", problem: "expected x-api-key or bearer, got '\(scheme)'")
        }
        let version = read.string("ANTHROPIC_VERSION") ?? "2023-06-01"
        if let key = read.string("ANTHROPIC_API_KEY") {
            var models = read.list("ANTHROPIC_MODELS", default: [])
            if !models.contains(anthropicModel) { models.insert(anthropicModel, at: 0) }
            providers.append(Provider(name: "anthropic", api: .anthropic,
                                      baseURL: try read.httpURL("ANTHROPIC_BASE_URL", default: "https://api.anthropic.com"),
                                      apiKey: key, models: models, plainIDs: true, authScheme: authScheme, version: version))
        }
        if read.string("OPENAI_BASE_URL") != nil || read.string("OPENAI_API_KEY") != nil {
            providers.append(Provider(name: "openai", api: .openai, baseURL: try read.httpURL("OPENAI_BASE_URL", default: "https://api.openai.com/v1"),
                                      apiKey: read.string("OPENAI_API_KEY"), models: Self.models(read, "OPENAI_MODELS"), plainIDs: false,
                                      authScheme: .bearer, version: version))
        }
        for name in read.list("PROVIDERS", default: []) {
            providers.append(try Self.named(name, read, authScheme: authScheme, version: version, known: providers.map(\.name)))
        }
        self.providers = providers
        for provider in providers {
            if Self.pointsAtThisServer(provider.baseURL, port: port, publicURL: publicURL) {
                let key = provider.name == "openai" ? "OPENAI_BASE_URL" : "PROVIDER_\(Self.envName(provider.name))_BASE_URL"
                throw SettingsError(key: key, problem: "points at this server's own /v1: a provider must be another server")
            }
        }

        defaultModel = read.string("DEFAULT_MODEL") ?? (providers.first?.plainIDs == true ? anthropicModel : nil)
        capabilities = try Self.capabilities(read)
        var windows: [String: Int] = [:]
        for key in ["ANTHROPIC_CONTEXT_WINDOWS", "MODEL_CONTEXT_WINDOWS"] {
            for (model, tokens) in try Self.numbers(read, key, minimum: 1_000) { windows[model] = tokens }
        }
        contextWindows = windows
        anthropicContextWindow = try read.int("ANTHROPIC_CONTEXT_WINDOW", default: 200_000, in: 1_000...100_000_000)
        thinkingBudgets = try Self.numbers(read, "ANTHROPIC_THINKING", minimum: 1_024)
        let maxTokensKey = Self.everyProvider(read, "MAX_TOKENS")
        maxTokens = try read.int(maxTokensKey, default: 4096, in: 1...1_000_000)
        for window in [anthropicContextWindow] + windows.values where window <= maxTokens {
            throw SettingsError(key: maxTokensKey, problem: "must be smaller than every context window (one is \(window) tokens)")
        }
        promptCaching = try read.bool("ANTHROPIC_PROMPT_CACHING", default: true)
        maxRetries = try read.int(Self.everyProvider(read, "MAX_RETRIES"), default: 2, in: 0...10)
        connectTimeout = try read.duration(Self.everyProvider(read, "CONNECT_TIMEOUT"), default: .seconds(10))
        firstByteTimeout = try read.duration(Self.everyProvider(read, "FIRST_BYTE_TIMEOUT"), default: .seconds(60))
        idleTimeout = try read.duration(Self.everyProvider(read, "IDLE_TIMEOUT"), default: .seconds(60))
        refreshInterval = try read.duration("MODELS_REFRESH_INTERVAL", default: .seconds(300))
        offlineWordDelay = try read.duration("OFFLINE_WORD_DELAY", default: .milliseconds(40), allowZero: true)
        titleModel = read.string("TITLE_MODEL")
    }

    /// The provider `name` of `PROVIDERS`, from its `PROVIDER_<NAME>_*` settings.
    private static func named(_ name: String, _ read: SettingsReader, authScheme: AnthropicConfiguration.AuthScheme, version: String,
                              known: [String]) throws(SettingsError) -> Provider {
        guard name.count <= 32, let first = name.first, first.isASCII, first.isLetter || first.isNumber,
              name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw SettingsError(key: "PROVIDERS", problem: "'\(name)' is not a provider name: lowercase letters, digits, - and _, at most 32")
        }
        guard !reservedNames.contains(name) else {
            throw SettingsError(key: "PROVIDERS", problem: "'\(name)' is reserved (anthropic, openai and offline are configured by their own settings)")
        }
        guard !known.contains(name) else { throw SettingsError(key: "PROVIDERS", problem: "'\(name)' is listed twice") }
        let prefix = "PROVIDER_\(envName(name))_"
        guard let apiName = read.string(prefix + "API") else {
            throw SettingsError(key: prefix + "API", problem: "required for the provider '\(name)': openai or anthropic")
        }
        guard let api = API(rawValue: apiName.lowercased()) else {
            throw SettingsError(key: prefix + "API", problem: "expected openai or anthropic, got '\(apiName)'")
        }
        guard read.string(prefix + "BASE_URL") != nil || api == .anthropic else {
            throw SettingsError(key: prefix + "BASE_URL", problem: "required for the provider '\(name)' (the URL that ends before /chat/completions, usually …/v1)")
        }
        let baseURL = try read.httpURL(prefix + "BASE_URL", default: "https://api.anthropic.com")
        let key = read.string(prefix + "API_KEY")
        if api == .anthropic, key == nil {
            throw SettingsError(key: prefix + "API_KEY", problem: "required for the Anthropic provider '\(name)'")
        }
        return Provider(name: name, api: api, baseURL: baseURL, apiKey: key, models: models(read, prefix + "MODELS"), plainIDs: false,
                        authScheme: authScheme, version: version)
    }

    /// The key of a setting that applies to every provider: `MODEL_<name>`, or the `ANTHROPIC_<name>`
    /// it had when Anthropic was the only provider (still read, so that old deployments keep working).
    private static func everyProvider(_ read: SettingsReader, _ name: String) -> String {
        read.string("MODEL_" + name) == nil && read.string("ANTHROPIC_" + name) != nil ? "ANTHROPIC_" + name : "MODEL_" + name
    }

    /// `PROVIDER_<NAME>_…`'s `<NAME>`: the name in capitals, `-` as `_`.
    static func envName(_ name: String) -> String { name.uppercased().replacingOccurrences(of: "-", with: "_") }

    private static func models(_ read: SettingsReader, _ key: String) -> [String]? {
        let models = read.list(key, default: [])
        return models.isEmpty ? nil : models
    }

    /// Entries `id=…` of a list separated by `;` (or `,`).
    private static func entries(_ read: SettingsReader, _ key: String) -> [(id: String, value: String)]? {
        guard let raw = read.string(key) else { return [] }
        var entries: [(String, String)] = []
        for entry in raw.split(whereSeparator: { $0 == ";" || $0 == "," }).map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty else { return nil }
            entries.append((parts[0], parts[1]))
        }
        return entries
    }

    private static func numbers(_ read: SettingsReader, _ key: String, minimum: Int) throws(SettingsError) -> [String: Int] {
        guard let entries = entries(read, key) else {
            throw SettingsError(key: key, problem: "expected model=tokens pairs separated by ; such as claude-haiku-5=200000")
        }
        var numbers: [String: Int] = [:]
        for (id, value) in entries {
            guard let number = Int(value), number >= minimum, number <= 100_000_000 else {
                throw SettingsError(key: key, problem: "'\(id)=\(value)': expected a whole number of tokens from \(minimum)")
            }
            numbers[id] = number
        }
        return numbers
    }

    private static func capabilities(_ read: SettingsReader) throws(SettingsError) -> [String: Set<Capability>] {
        guard let entries = entries(read, "MODEL_CAPABILITIES") else {
            throw SettingsError(key: "MODEL_CAPABILITIES", problem: "expected model=vision+documents+tools+reasoning;… (none: model=)")
        }
        var capabilities: [String: Set<Capability>] = [:]
        for (id, value) in entries {
            var set = Set<Capability>()
            for name in value.split(separator: "+").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !name.isEmpty {
                guard let capability = Capability(rawValue: name) else {
                    throw SettingsError(key: "MODEL_CAPABILITIES", problem: "'\(name)' is not a capability: vision, documents, tools or reasoning")
                }
                set.insert(capability)
            }
            capabilities[id] = set
        }
        return capabilities
    }

    /// Whether `baseURL` is this server's own `/v1` (a provider that would send replies back here).
    static func pointsAtThisServer(_ baseURL: String, port: Int, publicURL: String?) -> Bool {
        guard let url = URL(string: baseURL), let host = url.host?.lowercased() else { return false }
        guard url.path.hasPrefix("/v1") else { return false }
        let urlPort = url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80)
        let local: Set<String> = ["localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"]
        if local.contains(host), urlPort == port { return true }
        if let publicURL, let own = URL(string: publicURL), own.host?.lowercased() == host,
           (own.port ?? (own.scheme?.lowercased() == "https" ? 443 : 80)) == urlPort {
            return true
        }
        return false
    }
}
