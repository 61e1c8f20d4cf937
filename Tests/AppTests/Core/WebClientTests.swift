@testable import App
import Foundation
import Testing
import VaporTesting

@Suite("Web client files")
struct WebClientTests {
    @Test("/ serves the web client with a CSP that allows only this origin's scripts, and no inline script")
    func servedWithStrictPolicy() async throws {
        try await withTestApp(.sqlite) { t in
            let page = try await t.send(.GET, "/")
            #expect(page.status == .ok)
            #expect(page.headers.first(name: .contentType)?.hasPrefix("text/html") == true)
            let policy = try #require(page.headers.first(name: "Content-Security-Policy"))
            #expect(policy.contains("script-src 'self'"))
            #expect(policy.contains("connect-src 'self'"))
            #expect(!policy.contains("unsafe-inline"))
            #expect(!policy.contains("unsafe-eval"))
            let html = page.body.string
            // Every script is a file of this origin: no inline code, no event-handler attributes.
            let scripts = html.components(separatedBy: "<script").dropFirst()
            #expect(!scripts.isEmpty)
            for script in scripts { #expect(script.hasPrefix(#" type="module" src="/app/"#)) }
            #expect(html.range(of: #"\son[a-z]+="#, options: .regularExpression) == nil)

            for (path, type) in [("/app/main.js", "application/javascript"), ("/app/app.css", "text/css")] {
                let file = try await t.send(.GET, path)
                #expect(file.status == .ok, "\(path)")
                #expect(file.headers.first(name: .contentType)?.hasPrefix(type) == true, "\(path)")
            }
            // The API keeps its own, stricter policy.
            #expect(try await t.send(.GET, "/healthz").headers.first(name: "Content-Security-Policy") == "default-src 'none'; frame-ancestors 'none'")
        }
    }

    @Test("a reload answered 304 Not Modified carries no policy of its own, so the page's stands (the API's would blank the web chat); a changed page is sent whole with the page's")
    func revalidatedPageKeepsItsPolicy() async throws {
        try await withTestApp(.sqlite) { t in
            let page = try await t.send(.GET, "/")
            let tag = try #require(page.headers.first(name: .eTag))
            let revalidated = try await t.send(.GET, "/", headers: ["If-None-Match": tag])
            #expect(revalidated.status == .notModified)
            #expect(revalidated.headers.first(name: "Content-Security-Policy") == nil, "a 304 must not replace the page's policy")
            #expect(revalidated.headers.first(name: "X-Content-Type-Options") == "nosniff")
            let stale = try await t.send(.GET, "/", headers: ["If-None-Match": #""not-this-one""#])
            #expect(stale.status == .ok)
            #expect(stale.headers.first(name: "Content-Security-Policy")?.contains("script-src 'self'") == true)
        }
    }

    @Test("/auth/providers/ says which sign-in methods work")
    func providers() async throws {
        try await withTestApp(.sqlite) { t in
            let response = try await t.send(.GET, "/auth/providers/")
            #expect(response.status == .ok)
            let body = try response.jsonObject()
            #expect(body["password"] as? Bool == true)
            #expect(body["google"] as? Bool == false)
        }
    }
}

@Suite("Static files")
struct StaticFilesTests {
    @Test("only files under Public/ are served; dot segments, hidden files and API paths are not")
    func onlyPublicFiles() async throws {
        try await withTestApp(.sqlite) { t in
            for path in ["/app/../Package.swift", "/app/%2e%2e/Package.swift", "/app/.hidden", "/../Package.swift", "/Package.swift", "/app/"] {
                let response = try await t.send(.GET, path)
                #expect(response.status == .notFound, "\(path)")
                #expect(!response.body.string.contains("PackageDescription"), "\(path)")
            }
            #expect(try await t.send(.POST, "/app/main.js").status != .ok)
        }
    }

    @Test("a path is resolved as by decoding it whole, whether or not its first segment is looked at first", arguments: [
        "/", "", "/app/main.js", "//app/main.js", "/app", "/app/", "/%61pp/main.js", "/app%2Fmain.js", "/api/chat/", "/index.html",
        "/index.html/", "/admin/", "/app/../Package.swift", "/app/%2e%2e/Package.swift", "/.hidden", "/app/.hidden", "/%", "/%zz/app",
        "/app/main.js?x=1", "/APP/main.js", "/app\\main.js", "///", "/app/missing.js",
    ])
    func sameResolution(_ path: String) throws {
        let middleware = StaticFilesMiddleware(directory: DirectoryConfiguration.detect().publicDirectory)
        try #require(middleware.entries.contains("app"), "the web client's files are found")
        // The resolution before the shortcut: decode, split, check every segment, look on disk.
        func decodedWhole(_ path: String) -> String? {
            guard let decoded = path.removingPercentEncoding else { return nil }
            let segments = decoded == "/" ? ["index.html"] : decoded.split(separator: "/").map(String.init)
            guard let first = segments.first, middleware.entries.contains(first),
                  !segments.contains(where: { $0.hasPrefix(".") || $0.contains("\\") }) else { return nil }
            let absolute = middleware.directory + segments.joined(separator: "/")
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), !isDirectory.boolValue else { return nil }
            return absolute
        }
        #expect(middleware.file(for: path) == decodedWhole(path))
    }

    @Test("static files do not count against the rate limits (a page load fetches many)")
    func notRateLimited() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_ANONYMOUS": "1/minute"]) { t in
            for _ in 0..<5 {
                let file = try await t.send(.GET, "/app/main.js")
                #expect(file.status == .ok)
            }
            let first = try await t.send(.GET, "/auth/providers/")
            let second = try await t.send(.GET, "/auth/providers/")
            #expect(first.status == .ok)
            #expect(second.status == .tooManyRequests)
        }
    }
}
