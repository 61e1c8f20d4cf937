import Foundation
import Logging

/// A setting that could not be used: start-up stops with one line naming the key and the problem.
public struct SettingsError: Error, CustomStringConvertible, Equatable {
    public let key: String
    public let problem: String

    public var description: String { "\(key): \(problem)" }
}

/// Typed reads of raw environment values; every failure names its key.
struct SettingsReader {
    let values: [String: String]

    /// The trimmed value of `key`, or nil when it is unset or blank.
    func string(_ key: String) -> String? {
        guard let raw = values[key]?.trimmingCharacters(in: .whitespacesAndNewlines), !raw.isEmpty else { return nil }
        return raw
    }

    func bool(_ key: String, default fallback: Bool) throws(SettingsError) -> Bool {
        guard let raw = string(key) else { return fallback }
        switch raw.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw SettingsError(key: key, problem: "expected true or false, got '\(raw)'")
        }
    }

    func int(_ key: String, default fallback: Int, in range: ClosedRange<Int>) throws(SettingsError) -> Int {
        guard let raw = string(key) else { return fallback }
        guard let value = Int(raw) else {
            throw SettingsError(key: key, problem: "expected a whole number, got '\(raw)'")
        }
        guard range.contains(value) else {
            throw SettingsError(key: key, problem: "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }

    /// A duration such as `900` (seconds), `0.04`, `90s`, `15m`, `12h` or `7d`.
    func duration(_ key: String, default fallback: Duration, allowZero: Bool = false) throws(SettingsError) -> Duration {
        guard let raw = string(key) else { return fallback }
        let units: [Character: TimeInterval] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        var number = Substring(raw.lowercased())
        var unit: TimeInterval = 1
        if let last = number.last, let multiplier = units[last] {
            unit = multiplier
            number = number.dropLast()
        }
        guard let value = Double(number), value.isFinite, value > 0 || (allowZero && value == 0) else {
            throw SettingsError(key: key, problem: "expected a positive duration such as 900, 15m, 12h or 7d, got '\(raw)'")
        }
        return .milliseconds(value * unit * 1000)
    }

    /// A size such as `1048576`, `512kb` or `1mb`, in bytes.
    func byteCount(_ key: String, default fallback: Int) throws(SettingsError) -> Int {
        guard let raw = string(key) else { return fallback }
        let lowered = raw.lowercased().replacingOccurrences(of: " ", with: "")
        let units: [(suffix: String, multiplier: Int)] = [("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10), ("b", 1)]
        var number = lowered
        var multiplier = 1
        if let unit = units.first(where: { lowered.hasSuffix($0.suffix) }) {
            number = String(lowered.dropLast(unit.suffix.count))
            multiplier = unit.multiplier
        }
        guard let value = Int(number), value > 0, case let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier),
              !overflow else {
            throw SettingsError(key: key, problem: "expected a size such as 1048576, 512kb or 1mb, got '\(raw)'")
        }
        return bytes
    }

    /// A comma-separated list; blank entries are dropped.
    func list(_ key: String, default fallback: [String]) -> [String] {
        guard let raw = string(key) else { return fallback }
        return raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func logLevel(_ key: String, default fallback: Logger.Level) throws(SettingsError) -> Logger.Level {
        guard let raw = string(key) else { return fallback }
        guard let level = Logger.Level(rawValue: raw.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw SettingsError(key: key, problem: "expected one of \(names), got '\(raw)'")
        }
        return level
    }

    /// An absolute http(s) origin such as `https://chat.example.com` (no path).
    func origin(_ raw: String, key: String) throws(SettingsError) -> String {
        guard let url = URL(string: raw), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty, url.path.isEmpty || url.path == "/", url.query == nil
        else {
            throw SettingsError(key: key, problem: "expected an origin such as https://chat.example.com, got '\(raw)'")
        }
        return "\(scheme)://\(host.lowercased())" + (url.port.map { ":\($0)" } ?? "")
    }

    func httpURL(_ key: String, default fallback: String, keepTrailingSlash: Bool = false) throws(SettingsError) -> String {
        let raw = string(key) ?? fallback
        guard let url = URL(string: raw), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty
        else {
            throw SettingsError(key: key, problem: "expected an http:// or https:// URL, got '\(raw)'")
        }
        return raw.hasSuffix("/") && !keepTrailingSlash ? String(raw.dropLast()) : raw
    }
}
