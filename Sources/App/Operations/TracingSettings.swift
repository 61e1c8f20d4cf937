import Foundation

/// OpenTelemetry traces of requests and replies, sent by OTLP over HTTP to a collector: on when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) names one, read with
/// the meanings the OpenTelemetry specification gives these variables. Off, nothing is traced.
public struct TracingSettings: Sendable, Equatable {
    public enum Encoding: String, Sendable {
        /// `http/protobuf`, the specification's default.
        case protobuf = "http/protobuf"
        /// `http/json`.
        case json = "http/json"
    }

    /// Where spans are posted: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` added.
    public var endpoint: String
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    public var encoding: Encoding
    /// `OTEL_EXPORTER_OTLP_HEADERS`: `name=value` pairs, comma-separated (a hosted collector's key).
    public var headers: [String: String]
    /// `OTEL_SERVICE_NAME`, `chat-server` unless given.
    public var serviceName: String
    /// `OTEL_TRACES_SAMPLER_ARG`: the share of traces kept (0 to 1), unless the caller's
    /// `traceparent` already decided; 1 unless given.
    public var sampleRatio: Double
    /// `OTEL_BSP_SCHEDULE_DELAY`: how long finished spans wait to be sent together (milliseconds).
    public var exportDelay: Duration

    public init(endpoint: String, encoding: Encoding = .protobuf, headers: [String: String] = [:], serviceName: String = "chat-server",
                sampleRatio: Double = 1, exportDelay: Duration = .seconds(5)) {
        self.endpoint = endpoint
        self.encoding = encoding
        self.headers = headers
        self.serviceName = serviceName
        self.sampleRatio = sampleRatio
        self.exportDelay = exportDelay
    }

    /// The tracing settings, or nil when no collector is named.
    static func read(_ read: SettingsReader) throws(SettingsError) -> TracingSettings? {
        let endpoint: String
        if read.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != nil {
            endpoint = try read.httpURL("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default: "", keepTrailingSlash: true)
        } else if read.string("OTEL_EXPORTER_OTLP_ENDPOINT") != nil {
            endpoint = try read.httpURL("OTEL_EXPORTER_OTLP_ENDPOINT", default: "") + "/v1/traces"
        } else {
            return nil
        }
        let encodingName = read.string("OTEL_EXPORTER_OTLP_PROTOCOL") ?? Encoding.protobuf.rawValue
        guard let encoding = Encoding(rawValue: encodingName.lowercased()) else {
            throw SettingsError(key: "OTEL_EXPORTER_OTLP_PROTOCOL", problem: "expected http/protobuf or http/json (grpc is not built in), got '\(encodingName)'")
        }
        let serviceName = read.string("OTEL_SERVICE_NAME") ?? "chat-server"
        guard serviceName.utf8.count <= 255 else {
            throw SettingsError(key: "OTEL_SERVICE_NAME", problem: "must be at most 255 bytes")
        }
        let ratioText = read.string("OTEL_TRACES_SAMPLER_ARG") ?? "1"
        guard let ratio = Double(ratioText), (0...1).contains(ratio) else {
            throw SettingsError(key: "OTEL_TRACES_SAMPLER_ARG", problem: "expected the share of traces kept, from 0 to 1, got '\(ratioText)'")
        }
        let delay = try read.int("OTEL_BSP_SCHEDULE_DELAY", default: 5000, in: 1...600_000)
        return TracingSettings(endpoint: endpoint, encoding: encoding, headers: try headers(read.string("OTEL_EXPORTER_OTLP_HEADERS")),
                               serviceName: serviceName, sampleRatio: ratio, exportDelay: .milliseconds(delay))
    }

    /// `name=value,name=value`, values percent-encoded (W3C Baggage's form, as the specification says).
    private static func headers(_ raw: String?) throws(SettingsError) -> [String: String] {
        guard let raw, !raw.isEmpty else { return [:] }
        var headers: [String: String] = [:]
        for pair in raw.split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            let name = parts.first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard parts.count == 2, !name.isEmpty, name.utf8.allSatisfy(Self.isTokenByte),
                  let value = parts[1].trimmingCharacters(in: .whitespaces).removingPercentEncoding,
                  !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F })
            else {
                throw SettingsError(key: "OTEL_EXPORTER_OTLP_HEADERS", problem: "expected name=value pairs separated by commas (values percent-encoded)")
            }
            headers[name.lowercased()] = value
        }
        return headers
    }

    /// A byte of an HTTP header's name (RFC 9110's `tchar`).
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
