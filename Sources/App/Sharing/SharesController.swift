import Vapor

/// Share links, for their owner: `POST /api/chat/<id>/share/`, `GET /api/shares/`,
/// `DELETE /api/shares/<id>/`.
struct SharesController: RouteCollection {
    let shares: ShareService

    func boot(routes: any RoutesBuilder) throws {
        routes.post("chat", ":chatID", "share", use: create)
        routes.get("shares", use: list)
        routes.delete("shares", ":shareID", use: revoke)
    }

    func create(req: Request) async throws -> Response {
        let input = try req.decodeJSON(CreateShareRequest.self, allowEmpty: true).validated()
        let share = try await shares.create(try req.chatID(), for: try req.currentUser.requireID(), expiresInDays: input, on: req.db)
        return try await share.encodeResponse(status: .created, for: req)
    }

    func list(req: Request) async throws -> ShareListResponse {
        ShareListResponse(results: try await shares.list(for: try req.currentUser.requireID(), on: req.db))
    }

    func revoke(req: Request) async throws -> HTTPStatus {
        try await shares.revoke(req.parameters.get("shareID") ?? "", for: try req.currentUser.requireID(), on: req.db)
        return .noContent
    }
}

/// What a link shows, to whoever may open it (anyone in `public` mode, a signed-in user in
/// `users` mode): `GET /api/shares/<id>/` and its images.
struct SharedReadsController: RouteCollection {
    let shares: ShareService
    let files: FileLibrary

    func boot(routes: any RoutesBuilder) throws {
        routes.get("shares", ":shareID", use: show)
        routes.get("shares", ":shareID", "files", ":fileID", use: image)
    }

    func show(req: Request) async throws -> Response {
        let share = try await shares.open(req.parameters.get("shareID") ?? "", on: req.db)
        var headers = HTTPHeaders()
        headers.contentType = .json
        let response = Response(status: .ok, headers: headers, body: .init(buffer: shares.conversationJSON(of: share)))
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        response.headers.replaceOrAdd(name: "X-Robots-Tag", value: "noindex")
        return response
    }

    func image(req: Request) async throws -> Response {
        let share = try await shares.open(req.parameters.get("shareID") ?? "", on: req.db)
        guard let raw = req.parameters.get("fileID"), let fileID = UUID(hyphenated: raw) else { throw ShareError.notFound }
        let record = try await shares.image(fileID, of: share, on: req.db)
        let response = try await FileContent.response(record, files: files, for: req)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        response.headers.replaceOrAdd(name: "X-Robots-Tag", value: "noindex")
        return response
    }
}

/// `POST /api/chat/<id>/share/`: `{"expires_in_days"?}`, 1–3650; absent: never.
struct CreateShareRequest: Decodable {
    var expires_in_days: Int?

    func validated() throws -> Int? {
        if let days = expires_in_days, !(1...3650).contains(days) {
            throw RequestError.invalidFields(["expires_in_days": ["Expected a number of days from 1 to 3650."]])
        }
        return expires_in_days
    }
}

struct ShareListResponse: Content {
    var results: [ShareResponse]
}
