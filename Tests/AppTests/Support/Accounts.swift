@testable import App
import Fluent
import Foundation
import Testing
import Vapor
import VaporTesting

/// `Session` and `User` as a client reads them.
struct SessionBody: Decodable {
    struct UserBody: Decodable {
        var id: String
        var email: String
        var name: String
        var role: String
        var is_staff: Bool
        var created_at: String
    }

    var user: UserBody
    var access: String
    var refresh: String
    var token_type: String
    var expires_in: Int
    var notices: [String]?
}

struct TokenPairBody: Decodable {
    var access: String
    var refresh: String
    var token_type: String
    var expires_in: Int
}

/// A unique, valid email for a test user.
func uniqueEmail(_ prefix: String = "user") -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())@example.com"
}

let testPassword = "correct horse battery"

extension TestApp {
    /// Signs up through the API and returns the session.
    func register(email: String = uniqueEmail(), password: String = testPassword, name: String? = nil,
                  sourceLocation: SourceLocation = #_sourceLocation) async throws -> SessionBody {
        var json: [String: Any] = ["email": email, "password": password]
        if let name { json["name"] = name }
        let response = try await send(.POST, "/auth/register/", json: json, sourceLocation: sourceLocation)
        try #require(response.status == .created, "register answered \(response.status): \(response.body.string)",
                     sourceLocation: sourceLocation)
        return try response.decoded(SessionBody.self)
    }

    func login(email: String, password: String = testPassword) async throws -> TestingHTTPResponse {
        try await send(.POST, "/auth/login/", json: ["email": email, "password": password])
    }

    func userCount() async throws -> Int {
        try await User.query(on: db).count()
    }
}

extension User {
    /// A user stored directly, bypassing the API (e.g. inactive or staff users).
    static func fixture(
        email: String = uniqueEmail(), password: String? = testPassword, isActive: Bool = true,
        isStaff: Bool = false, isSuperuser: Bool = false, on db: any Database
    ) async throws -> User {
        let hash = try password.map { try Bcrypt.hash($0, cost: 4) }
        let user = User(email: email, passwordHash: hash, isStaff: isStaff, isSuperuser: isSuperuser, isActive: isActive)
        try await user.create(on: db)
        return user
    }
}

/// Decodes a JWT's header and payload without checking it, to look at the claims.
func jwtParts(_ token: String) throws -> (header: [String: Any], payload: [String: Any]) {
    let parts = token.split(separator: ".").map(String.init)
    try #require(parts.count == 3)
    func decode(_ part: String) throws -> [String: Any] {
        var base64 = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        let data = try #require(Data(base64Encoded: base64))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
    return (try decode(parts[0]), try decode(parts[1]))
}
