import Vapor

/// Serves the files in `Public/` (the web chat at `/`, the admin's stylesheet). Only GET and HEAD
/// requests whose first path segment names an entry of `Public/` (read once at start) look at the
/// file system; API requests pass straight through, without the file lookup Vapor's
/// `FileMiddleware` makes for every request. Dot segments and hidden files are never served.
struct StaticFilesMiddleware: AsyncMiddleware {
    let directory: String
    let entries: Set<String>

    init(directory: String) {
        self.directory = directory.hasSuffix("/") ? directory : directory + "/"
        entries = Set((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
    }

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard request.method == .GET || request.method == .HEAD, let file = file(for: request.path) else {
            return try await next.respond(to: request)
        }
        return try await request.fileio.asyncStreamFile(at: file)
    }

    /// The file a path names, when it is one of ours.
    func file(for path: String) -> String? {
        // Most requests are the API's: when the first segment, as it stands, names no entry, nothing
        // is decoded, split or looked up on disk.
        if path != "/", !path.utf8.contains(UInt8(ascii: "%")), let first = path.split(separator: "/", maxSplits: 1).first,
           !entries.contains(String(first)) {
            return nil
        }
        guard let decoded = path.removingPercentEncoding else { return nil }
        let segments = decoded == "/" ? ["index.html"] : decoded.split(separator: "/").map(String.init)
        guard let first = segments.first, entries.contains(first),
              !segments.contains(where: { $0.hasPrefix(".") || $0.contains("\\") }) else { return nil }
        let absolute = directory + segments.joined(separator: "/")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), !isDirectory.boolValue else { return nil }
        return absolute
    }
}
