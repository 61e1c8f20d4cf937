@testable import App
import Foundation
import Testing
import VaporTesting

/// A browser in miniature for the admin: keeps its cookies, reads the CSRF token from the last
/// page with a form, and posts forms the way a browser does (`application/x-www-form-urlencoded`).
final class AdminClient {
    let t: TestApp
    private(set) var cookies: [String: String] = [:]
    private(set) var csrf: String?
    private(set) var last: TestingHTTPResponse?

    init(_ t: TestApp) { self.t = t }

    /// Signs in through the form; returns the response to the POST.
    @discardableResult
    func signIn(_ email: String, password: String = testPassword, sourceLocation: SourceLocation = #_sourceLocation) async throws -> TestingHTTPResponse {
        try await get("/admin/login/")
        return try await post("/admin/login/", ["email": email, "password": password], sourceLocation: sourceLocation)
    }

    @discardableResult
    func get(_ path: String) async throws -> TestingHTTPResponse {
        try await send(.GET, path, body: nil)
    }

    /// Posts `fields` plus the CSRF token of the last page (unless `csrf` says otherwise).
    @discardableResult
    func post(_ path: String, _ fields: [String: String] = [:], csrf override: String?? = .none,
              sourceLocation: SourceLocation = #_sourceLocation) async throws -> TestingHTTPResponse {
        var fields = fields
        switch override {
        case .none: if let csrf { fields["csrf_token"] = csrf }
        case .some(.none): break
        case .some(.some(let value)): fields["csrf_token"] = value
        }
        var components = URLComponents()
        components.queryItems = fields.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        let body = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        return try await send(.POST, path, body: body)
    }

    var html: String { last.map { String(buffer: $0.body) } ?? "" }

    private func send(_ method: HTTPMethod, _ path: String, body: String?) async throws -> TestingHTTPResponse {
        var headers = HTTPHeaders()
        if !cookies.isEmpty { headers.add(name: .cookie, value: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
        let response = try await t.send(method, path, body: body, contentType: body == nil ? nil : "application/x-www-form-urlencoded",
                                        headers: headers)
        for header in response.headers[.setCookie] {
            let pair = header.split(separator: ";", maxSplits: 1)[0].split(separator: "=", maxSplits: 1)
            let name = String(pair[0]), value = pair.count > 1 ? String(pair[1]) : ""
            if value.isEmpty || header.lowercased().contains("max-age=0") { cookies[name] = nil } else { cookies[name] = value }
        }
        let page = String(buffer: response.body)
        if let range = page.range(of: #"name="csrf_token" value="([^"]+)""#, options: .regularExpression) {
            csrf = String(page[range].dropFirst(#"name="csrf_token" value=""#.count).dropLast())
        }
        last = response
        return response
    }
}

extension TestingHTTPResponse {
    var location: String? { headers.first(name: .location) }
    var html: String { String(buffer: body) }
}
