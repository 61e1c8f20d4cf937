import Vapor

/// `/api/keys/`: the caller's personal API keys — made (the secret shown this once), listed,
/// revoked. Reached with an access token only: a key cannot make keys.
struct APIKeysController: RouteCollection {
    let keys: APIKeys
    let users: SignedInUsers

    func boot(routes: any RoutesBuilder) throws {
        let group = routes.grouped("keys")
        group.post(use: create)
        group.get(use: list)
        group.delete(":key_id", use: revoke)
    }

    func create(req: Request) async throws -> Response {
        let user = try req.currentUser
        let input = try req.decodeJSON(CreateAPIKeyRequest.self).validated()
        let (key, secret) = try await keys.create(for: try user.requireID(), name: input.name, scope: input.scope,
                                                  expiresInDays: input.expiresInDays, on: req.db)
        return try await APIKeyResponse(key, secret: secret).encodeResponse(status: .created, for: req)
    }

    func list(req: Request) async throws -> APIKeyListResponse {
        let user = try req.currentUser
        return APIKeyListResponse(results: try await keys.list(of: try user.requireID(), on: req.db).map { try APIKeyResponse($0) })
    }

    func revoke(req: Request) async throws -> HTTPStatus {
        let user = try req.currentUser
        guard let id = req.parameters.get("key_id").flatMap(UUID.init(hyphenated:)),
              let owner = try await keys.revoke(id, of: try user.requireID(), on: req.db) else {
            throw HTTPProblem(.notFound, title: "Not found", detail: "No such API key.")
        }
        // Every instance forgets the owner's keys (and account) now: the key is refused everywhere at once.
        users.changed(owner)
        return .noContent
    }
}

/// `POST /api/keys/`.
struct CreateAPIKeyRequest: Decodable {
    var name: String?
    var scope: String?
    var expiresInDays: Int?

    enum CodingKeys: String, CodingKey {
        case name, scope, expiresInDays = "expires_in_days"
    }

    struct Valid {
        var name: String
        var scope: APIKey.Scope
        var expiresInDays: Int?
    }

    /// The name: 1–100 characters, not blank, no control characters; the scope `inference`
    /// (default) or `full`; the expiry 1–3650 days (absent or null: never).
    func validated() throws(RequestError) -> Valid {
        var errors = FieldErrors()
        let name = errors.required(self.name, "name").trimmingCharacters(in: .whitespacesAndNewlines)
        errors.checkText(name, "name")
        if self.name != nil, name.isEmpty { errors.add("name", "This field may not be blank.") }
        errors.checkLength(name, "name", .keyName)
        let scope = APIKey.Scope(rawValue: self.scope ?? APIKey.Scope.inference.rawValue)
        if scope == nil { errors.add("scope", "Choose inference (the /v1/ API only) or full (the /v1/ and /api/ endpoints).") }
        if let days = expiresInDays, !(1...3650).contains(days) { errors.add("expires_in_days", "Between 1 and 3650 days, or leave it out for a key that does not expire.") }
        try errors.throwIfAny()
        return Valid(name: name, scope: scope ?? .inference, expiresInDays: expiresInDays)
    }
}

/// The contract's `ApiKey`: `{"id", "name", "scope", "prefix", "created_at", "expires_at",
/// "last_used_at"}`, and `key` — the secret — in the answer that made it only.
struct APIKeyResponse: Content {
    var id: String
    var name: String
    var scope: String
    var prefix: String
    var createdAt: Date
    var expiresAt: Date?
    var lastUsedAt: Date?
    var key: String?

    enum CodingKeys: String, CodingKey {
        case id, name, scope, prefix, key
        case createdAt = "created_at", expiresAt = "expires_at", lastUsedAt = "last_used_at"
    }

    init(_ key: APIKey, secret: String? = nil) throws {
        id = try key.requireID().lowercased
        name = key.name
        scope = key.scope.rawValue
        prefix = key.prefix
        createdAt = key.createdAt
        expiresAt = key.expiresAt
        lastUsedAt = key.lastUsedAt
        self.key = secret
    }

    /// Every field present (null where absent), but `key` only where there is one.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(scope, forKey: .scope)
        try container.encode(prefix, forKey: .prefix)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
        try container.encodeIfPresent(key, forKey: .key)
    }
}

struct APIKeyListResponse: Content {
    var results: [APIKeyResponse]
}
