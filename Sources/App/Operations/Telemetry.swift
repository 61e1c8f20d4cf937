import Logging
import NIOConcurrencyHelpers
import OTel
import ServiceLifecycle
import Tracing
import Vapor

/// OpenTelemetry traces (``TracingSettings``): a span per request (``RequestTracingMiddleware``)
/// and per reply or completion (``ModelCallTrace``), batched and posted to the collector by
/// swift-otel's OTLP/HTTP exporter. It exists only when a collector is named: without it no
/// middleware is installed and no span is made, so tracing off costs nothing.
///
/// Its exporter runs from the server's start (``start()``, with the server's other background
/// work; a command such as `migrate` sends nothing) to shutdown, after everything that makes spans
/// (it is registered first, so shut down last); what is still batched is sent then, within ``flushLimit``.
final class Telemetry: LifecycleHandler, Sendable {
    let tracer: any Tracer
    private let exporter: ServiceGroup
    private let running = NIOLockedValueBox<Task<Void, Never>?>(nil)
    private let logger: Logger

    /// How long shutdown waits for the last spans to be sent.
    static let flushLimit: Duration = .seconds(5)

    init(settings: TracingSettings, logger: Logger) throws {
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.serviceName
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        configuration.propagators = [.traceContext]
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.endpoint = settings.endpoint
        configuration.traces.otlpExporter.protocol = settings.encoding == .json ? .httpJSON : .httpProtobuf
        configuration.traces.otlpExporter.headers = settings.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        configuration.traces.sampler = settings.sampleRatio >= 1 ? .parentBasedAlwaysOn
            : (.parentBasedTraceIDRatio(ratio: settings.sampleRatio) ?? .parentBasedAlwaysOff)
        configuration.traces.batchSpanProcessor.scheduleDelay = settings.exportDelay
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        tracer = backend.factory
        exporter = ServiceGroup(services: [backend.service], logger: logger)
        self.logger = logger
    }

    /// Starts sending spans (once).
    func start() {
        running.withLockedValue { running in
            guard running == nil else { return }
            running = Task { [exporter, logger] in
                do {
                    try await exporter.run()
                } catch {
                    logger.warning("the trace exporter stopped", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    func shutdownAsync(_ application: Application) async {
        guard let task = running.withLockedValue({ $0 }) else { return }
        await exporter.triggerGracefulShutdown()
        // A collector that does not answer does not hold the shutdown past the flush limit.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await task.value }
            group.addTask { try? await Task.sleep(for: Self.flushLimit) }
            await group.next()
            task.cancel()
            group.cancelAll()
        }
    }

    /// The context a span made now descends from: the current request's span, if any.
    static var currentContext: ServiceContext { ServiceContext.current ?? .topLevel }
}

/// A span per request, `GET /api/chat/:chatID` (its method and route pattern), continuing the
/// caller's trace when it sends a W3C `traceparent`. Spans carry no path (ids, share tokens), no
/// query, no header values and no body: only the route, the method, the status and the client.
/// A streamed response's span ends when its headers are sent; the reply behind it has its own.
struct RequestTracingMiddleware: AsyncMiddleware {
    let tracer: any Tracer

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        var context = Telemetry.currentContext
        let carrier = TraceContextHeaders(request.headers)
        if carrier.traceparent != nil { tracer.extract(carrier, into: &context, using: TraceContextHeaders.Extractor()) }
        let route = request.route.map { "/" + $0.path.map(\.description).joined(separator: "/") }
        let span = tracer.startAnySpan(route.map { "\(request.method.rawValue) \($0)" } ?? request.method.rawValue, context: context,
                                       ofKind: .server)
        defer { span.end() }
        span.updateAttributes { attributes in
            attributes["http.request.method"] = request.method.rawValue
            if let route { attributes["http.route"] = route }
            attributes["url.scheme"] = request.url.scheme ?? "http"
            attributes["network.protocol.version"] = "\(request.version.major).\(request.version.minor)"
        }
        do {
            let response = try await ServiceContext.withValue(span.context) { try await next.respond(to: request) }
            let status = Int(response.status.code)
            span.attributes["http.response.status_code"] = status
            if status >= 500 {
                span.attributes["error.type"] = "\(status)"
                span.setStatus(SpanStatus(code: .error))
            }
            return response
        } catch {
            span.attributes["error.type"] = String(describing: type(of: error))
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }
}

/// The W3C trace context of a request: its `traceparent` and `tracestate` headers, and nothing
/// else of it. The propagator is handed only these (it logs the whole carrier when it refuses a
/// value: the request's headers would put its bearer token and cookies in the log), and only a
/// `traceparent` of the shape version 00 gives it — 55 characters of lowercase hex and dashes, a
/// trace id and a parent id not all zeros — and a `tracestate` it reads, so that a malformed one
/// starts a trace of its own (or drops the state) without a line logged per request.
struct TraceContextHeaders: Sendable, CustomStringConvertible {
    let traceparent: String?
    let tracestate: String?

    /// The most `tracestate` kept (what W3C requires a vendor to pass on); a longer one is left out.
    static let maxStateBytes = 512

    init(_ headers: HTTPHeaders) {
        traceparent = headers.first(name: "traceparent").flatMap { Self.isWellFormed(parent: $0) ? $0 : nil }
        tracestate = traceparent == nil ? nil : headers.first(name: "tracestate").flatMap { state in
            state.utf8.count <= Self.maxStateBytes && Self.isWellFormed(state: state) ? state : nil
        }
    }

    /// A `tracestate` the propagator reads without complaint (a refused one is logged, and costs
    /// the valid `traceparent` beside it): `vendor=value` or `tenant@system=value` members, vendors
    /// of `a-z 0-9 _ - * /` (at most 265, a tenant 241, a system 14), values of printable ASCII
    /// without commas (at most 265), members split by a comma and any spaces after it.
    static func isWellFormed(state value: String) -> Bool {
        enum Part { case vendor, system, value }
        func isKeyByte(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || "_-*/".utf8.contains(byte)
        }
        var part = Part.vendor
        var length = 0
        var bytes = value.utf8[...]
        while let byte = bytes.popFirst() {
            switch part {
            case .vendor, .system:
                if isKeyByte(byte) {
                    length += 1
                } else if byte == UInt8(ascii: "@"), part == .vendor, length <= 241 {
                    (part, length) = (.system, 0)
                } else if byte == UInt8(ascii: "="), length <= (part == .vendor ? 265 : 14) {
                    (part, length) = (.value, 0)
                } else {
                    return false
                }
            case .value:
                if byte == UInt8(ascii: ",") {
                    while bytes.first == UInt8(ascii: " ") { bytes.removeFirst() }
                    (part, length) = (.vendor, 0)
                } else if (0x20...0x7E).contains(byte), length < 265 {
                    length += 1
                } else {
                    return false
                }
            }
        }
        return true
    }

    /// `00-{32 hex}-{16 hex}-{2 hex}`, the ids not all zeros.
    static func isWellFormed(parent value: String) -> Bool {
        let bytes = Array(value.utf8)
        guard bytes.count == 55, bytes[0] == UInt8(ascii: "0"), bytes[1] == UInt8(ascii: "0") else { return false }
        for (index, byte) in bytes.enumerated() {
            if index == 2 || index == 35 || index == 52 {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) else {
                    return false
                }
            }
        }
        let allZeros = { (range: Range<Int>) in bytes[range].allSatisfy { $0 == UInt8(ascii: "0") } }
        return !allZeros(3..<35) && !allZeros(36..<52)
    }

    var description: String { "traceparent: \(traceparent ?? "-"); tracestate: \(tracestate ?? "-")" }

    struct Extractor: Tracing.Extractor {
        func extract(key: String, from carrier: TraceContextHeaders) -> String? {
            switch key.lowercased() {
            case "traceparent": carrier.traceparent
            case "tracestate": carrier.tracestate
            default: nil
            }
        }
    }
}
