import Foundation
import NIOConcurrencyHelpers
import Vapor

/// An in-process stand-in for an OpenTelemetry collector's OTLP/HTTP receiver: `POST /v1/traces`
/// in the JSON encoding (read into ``Span``s; ids as hex whatever the sender's encoding) or in
/// protobuf (kept as bytes), answering as a collector does; it can be told to refuse (503).
final class OTLPCollector: Sendable {
    struct Span: Sendable, CustomStringConvertible {
        var traceID: String
        var spanID: String
        var parentSpanID: String
        var name: String
        /// OTLP's `SpanKind`: 1 internal, 2 server, 3 client.
        var kind: Int
        var attributes: [String: String]
        var events: [(name: String, attributes: [String: String])]
        /// OTLP's status code: 0 unset, 1 ok, 2 error.
        var statusCode: Int
        /// The resource's attributes (`service.name`…).
        var resource: [String: String]

        var description: String { "\(name) \(attributes)" }
    }

    struct Post: Sendable {
        var contentType: String
        var headers: HTTPHeaders
        var body: Data
    }

    let endpoint: String
    private let app: Application
    private let shared: NIOLockedValueBox<(spans: [Span], posts: [Post], refusing: Bool)>

    static func start() async throws -> OTLPCollector {
        let app = try await Application.make(.testing)
        app.logger.logLevel = .error
        app.middleware = Middlewares()
        let state = NIOLockedValueBox<(spans: [Span], posts: [Post], refusing: Bool)>(([], [], false))
        app.on(.POST, "v1", "traces", body: .collect(maxSize: "16mb")) { req -> Response in
            let body = req.body.data.map { Data($0.readableBytesView) } ?? Data()
            let contentType = req.headers.first(name: .contentType) ?? ""
            let refusing = state.withLockedValue { state in
                state.posts.append(Post(contentType: contentType, headers: req.headers, body: body))
                return state.refusing
            }
            if refusing { return Response(status: .serviceUnavailable) }
            if contentType.hasPrefix("application/json") {
                let spans = try Self.spans(in: body)
                state.withLockedValue { $0.spans += spans }
                return Response(status: .ok, headers: ["Content-Type": "application/json"], body: .init(string: "{}"))
            }
            return Response(status: .ok, headers: ["Content-Type": "application/x-protobuf"], body: .init(data: Data()))
        }
        try await app.server.start(address: .hostname("127.0.0.1", port: 0))
        let port = app.http.server.shared.localAddress?.port ?? 0
        return OTLPCollector(endpoint: "http://127.0.0.1:\(port)", app: app, state: state)
    }

    private init(endpoint: String, app: Application, state: NIOLockedValueBox<(spans: [Span], posts: [Post], refusing: Bool)>) {
        self.endpoint = endpoint
        self.app = app
        shared = state
    }

    var spans: [Span] { shared.withLockedValue { $0.spans } }
    var posts: [Post] { shared.withLockedValue { $0.posts } }

    func refuse(_ refusing: Bool) { shared.withLockedValue { $0.refusing = refusing } }

    /// The settings that send a server's traces here, in JSON, batched for `delay` milliseconds.
    func settings(delayMilliseconds: Int = 20) -> [String: String] {
        ["OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
         "OTEL_BSP_SCHEDULE_DELAY": "\(delayMilliseconds)"]
    }

    func shutdown() async {
        await app.server.shutdown()
        try? await app.asyncShutdown()
    }

    // MARK: Reading OTLP's JSON

    private static func spans(in body: Data) throws -> [Span] {
        guard let root = try JSONSerialization.jsonObject(with: body) as? [String: Any] else { throw Abort(.badRequest) }
        var spans: [Span] = []
        for resourceSpans in root["resourceSpans"] as? [[String: Any]] ?? [] {
            let resource = attributes((resourceSpans["resource"] as? [String: Any])?["attributes"])
            for scopeSpans in resourceSpans["scopeSpans"] as? [[String: Any]] ?? [] {
                for span in scopeSpans["spans"] as? [[String: Any]] ?? [] {
                    let events = (span["events"] as? [[String: Any]] ?? []).map { event in
                        (name: event["name"] as? String ?? "", attributes: attributes(event["attributes"]))
                    }
                    spans.append(Span(
                        traceID: hex(span["traceId"]), spanID: hex(span["spanId"]), parentSpanID: hex(span["parentSpanId"]),
                        name: span["name"] as? String ?? "", kind: span["kind"] as? Int ?? 0, attributes: attributes(span["attributes"]),
                        events: events, statusCode: (span["status"] as? [String: Any])?["code"] as? Int ?? 0, resource: resource
                    ))
                }
            }
        }
        return spans
    }

    /// Attributes as text: strings as they are, numbers and booleans as JSON writes them, arrays as `[a,b]`.
    private static func attributes(_ raw: Any?) -> [String: String] {
        var attributes: [String: String] = [:]
        for attribute in raw as? [[String: Any]] ?? [] {
            guard let key = attribute["key"] as? String, let value = attribute["value"] as? [String: Any] else { continue }
            attributes[key] = text(value)
        }
        return attributes
    }

    private static func text(_ value: [String: Any]) -> String {
        if let string = value["stringValue"] as? String { return string }
        if let int = value["intValue"] { return "\(int)" }
        if let double = value["doubleValue"] { return "\(double)" }
        if let bool = value["boolValue"] as? Bool { return "\(bool)" }
        if let array = (value["arrayValue"] as? [String: Any])?["values"] as? [[String: Any]] {
            return "[" + array.map(text).joined(separator: ",") + "]"
        }
        return ""
    }

    /// An id as lowercase hex, from OTLP's hex or protobuf JSON's base64.
    private static func hex(_ raw: Any?) -> String {
        guard let text = raw as? String, !text.isEmpty else { return "" }
        if text.count == 32 || text.count == 16, text.allSatisfy(\.isHexDigit) { return text.lowercased() }
        guard let bytes = Data(base64Encoded: text) else { return text }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}
