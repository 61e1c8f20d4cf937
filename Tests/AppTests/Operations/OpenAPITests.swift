@testable import App
import Foundation
import Testing
import Vapor
import VaporTesting
import Yams

@Suite("OpenAPI document")
struct OpenAPITests {
    /// `chat/:chatID` → `/chat/{}/`: route and document paths compared without parameter names.
    static func shape(_ components: [String]) -> String {
        "/" + components.map { $0.hasPrefix(":") || $0.hasPrefix("{") ? "{}" : $0 }.joined(separator: "/") + "/"
    }

    @Test("it is served at /api/schema/ and describes exactly the routes the server has")
    func inStepWithRoutes() async throws {
        try await withTestApp(.sqlite) { t in
            let response = try await t.send(.GET, "/api/schema/")
            #expect(response.status == .ok)
            #expect(response.headers.first(name: .contentType)?.hasPrefix("application/yaml") == true)
            let document = try #require(try Yams.load(yaml: response.body.string) as? [String: Any])
            #expect((document["openapi"] as? String)?.hasPrefix("3.1") == true)
            let paths = try #require(document["paths"] as? [String: [String: Any]])

            var documented = Set<String>()
            for (path, operations) in paths {
                let components = path.split(separator: "/").map(String.init)
                for method in operations.keys where ["get", "post", "put", "patch", "delete"].contains(method) {
                    documented.insert("\(method.uppercased()) \(Self.shape(components))")
                }
            }
            // The admin's HTML pages are not part of the API.
            let served = Set(t.app.routes.all.filter { $0.path.first?.description != "admin" }.map { route in
                "\(route.method.rawValue) \(Self.shape(route.path.map(\.description)))"
            })

            #expect(served.subtracting(documented).isEmpty, "routes missing from the document: \(served.subtracting(documented).sorted())")
            #expect(documented.subtracting(served).isEmpty, "documented paths the server lacks: \(documented.subtracting(served).sorted())")
        }
    }

    @Test("every $ref points at a defined component")
    func referencesResolve() throws {
        let text = try String(contentsOfFile: "Resources/openapi.yaml", encoding: .utf8)
        let document = try #require(try Yams.load(yaml: text) as? [String: Any])
        let components = try #require(document["components"] as? [String: [String: Any]])
        let pattern = try NSRegularExpression(pattern: #"\$ref: '#/components/(\w+)/(\w+)'"#)
        let matches = pattern.matches(in: text, range: NSRange(text.startIndex..., in: text))
        #expect(!matches.isEmpty)
        for match in matches {
            let kind = String(text[Range(match.range(at: 1), in: text)!])
            let name = String(text[Range(match.range(at: 2), in: text)!])
            #expect(components[kind]?[name] != nil, "unresolved $ref #/components/\(kind)/\(name)")
        }
    }
}
