import NIOCore
import Providers
import Vapor

/// The OpenAI-compatible API: `GET /v1/models` and `POST /v1/chat/completions`, for API keys of
/// any scope and access tokens. Errors are OpenAI's (``OpenAIErrorMiddleware``).
struct V1Controller: RouteCollection {
    let catalog: ModelCatalog
    let completions: Completions
    let maxBodySize: Int
    /// What `created` says of every model: the server does not know when a provider made one.
    let startedAt: Date

    func boot(routes: any RoutesBuilder) throws {
        routes.get("models", use: models)
        routes.on(.POST, "chat", "completions", body: .collect(maxSize: ByteCount(value: maxBodySize)), use: complete)
    }

    /// How long `request` has to produce its response head: a completion's first piece, or the
    /// whole reply, may take longer than other requests.
    static func timeout(_ request: Request) -> Duration? {
        guard request.method == .POST else { return nil }
        let path = request.path
        return path == "/v1/chat/completions" || path == "/v1/chat/completions/" ? Completions.timeout : nil
    }

    func models(req: Request) -> Response {
        var out = req.byteBufferAllocator.buffer(capacity: 256)
        out.writeStaticString("{\"object\":\"list\",\"data\":[")
        for (index, model) in catalog.listing.enumerated() {
            if index > 0 { out.writeStaticString(",") }
            out.writeStaticString("{\"id\":")
            out.writeJSONString(model.id)
            out.writeStaticString(",\"object\":\"model\",\"created\":")
            out.writeJSONInt(Int(startedAt.timeIntervalSince1970))
            out.writeStaticString(",\"owned_by\":")
            out.writeJSONString(model.provider)
            out.writeStaticString("}")
        }
        out.writeStaticString("]}")
        var headers = HTTPHeaders()
        headers.contentType = .json
        return Response(status: .ok, headers: headers, body: .init(buffer: out))
    }

    func complete(req: Request) async throws -> Response {
        let spec = try req.decodeJSON(CompletionRequest.self).validated()
        return try await completions.respond(to: spec, for: try req.currentUser, relayedBy: req.headers[RelayHeader.name], on: req)
    }
}
