/// What replies may cost: the daily token quota, and the prices that turn tokens into money.
public struct UsageSettings: Sendable {
    /// Tokens (of every kind) a user may spend a day (UTC) unless the admin sets theirs; nil: no limit.
    public var quotaTokensPerDay: Int?
    /// Prices by model, in US dollars per million tokens of each kind; models without a price show no cost.
    public var prices: [String: ModelPrice]

    init(_ read: SettingsReader) throws(SettingsError) {
        if let raw = read.string("QUOTA_TOKENS_PER_DAY"), !raw.isEmpty {
            guard let quota = Int(raw), quota >= 0 else {
                throw SettingsError(key: "QUOTA_TOKENS_PER_DAY", problem: "expected a whole number of tokens (0 or more), got '\(raw)'")
            }
            quotaTokensPerDay = quota
        } else {
            quotaTokensPerDay = nil
        }
        prices = try Self.parsePrices(read.string("MODEL_PRICES") ?? "")
    }

    /// `model=input,output,cache_read,cache_write;…` (dollars per million tokens; the cache prices
    /// may be left out: then cache reads cost a tenth of input, cache writes 1.25 times input).
    static func parsePrices(_ raw: String) throws(SettingsError) -> [String: ModelPrice] {
        var prices: [String: ModelPrice] = [:]
        for entry in raw.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let numbers = parts.count == 2 ? parts[1].split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) } : []
            guard parts.count == 2, !parts[0].isEmpty, numbers.count == 2 || numbers.count == 4,
                  numbers.allSatisfy({ $0.map { $0 >= 0 && $0.isFinite } ?? false }) else {
                throw SettingsError(key: "MODEL_PRICES",
                                    problem: "expected model=input,output[,cache_read,cache_write] in dollars per million tokens, got '\(entry)'")
            }
            let values = numbers.compactMap { $0 }
            prices[parts[0]] = ModelPrice(input: values[0], output: values[1],
                                          cacheRead: values.count == 4 ? values[2] : values[0] * 0.1,
                                          cacheWrite: values.count == 4 ? values[3] : values[0] * 1.25)
        }
        return prices
    }
}

/// A model's price per million tokens of each kind, in US dollars.
public struct ModelPrice: Sendable, Equatable {
    public var input: Double
    public var output: Double
    public var cacheRead: Double
    public var cacheWrite: Double

    /// What `tokens` cost.
    func cost(of tokens: TokenCounts) -> Double {
        (Double(tokens.input) * input + Double(tokens.output) * output + Double(tokens.cacheRead) * cacheRead
            + Double(tokens.cacheWrite) * cacheWrite) / 1_000_000
    }
}

/// Tokens by kind, as the provider reports them.
struct TokenCounts: Sendable, Equatable {
    var input = 0
    var output = 0
    var cacheRead = 0
    var cacheWrite = 0

    var total: Int { input + output + cacheRead + cacheWrite }

    static func + (lhs: TokenCounts, rhs: TokenCounts) -> TokenCounts {
        TokenCounts(input: lhs.input + rhs.input, output: lhs.output + rhs.output, cacheRead: lhs.cacheRead + rhs.cacheRead,
                    cacheWrite: lhs.cacheWrite + rhs.cacheWrite)
    }
}
