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
        tracer.extract(request.headers, into: &context, using: HeaderExtractor())
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

private struct HeaderExtractor: Extractor {
    func extract(key: String, from headers: HTTPHeaders) -> String? {
        headers.first(name: key)
    }
}
