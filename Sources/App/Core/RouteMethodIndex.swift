import Vapor

/// Which methods answer at each path, so an unmatched request can be told 405 with `Allow`
/// rather than 404, and a plain `OPTIONS` request can be answered.
struct RouteMethodIndex: Sendable {
    private struct Entry: Sendable {
        let components: [PathComponent]
        var methods: Set<String>
    }

    private let entries: [Entry]

    init(routes: [Route]) {
        var entries: [Entry] = []
        for route in routes {
            let path = route.path.filter { if case .constant(let c) = $0 { return !c.isEmpty } else { return true } }
            if let index = entries.firstIndex(where: { $0.components.string == path.string }) {
                entries[index].methods.insert(route.method.rawValue)
            } else {
                entries.append(Entry(components: path, methods: [route.method.rawValue]))
            }
        }
        self.entries = entries
    }

    /// The methods routed at `path`, sorted; empty when no route matches the path at all.
    func methods(forPath path: String) -> [String] {
        let segments = path.split(separator: "/").map(String.init)
        var methods = Set<String>()
        for entry in entries where Self.matches(entry.components, segments[...]) {
            methods.formUnion(entry.methods)
        }
        if methods.contains("GET") { methods.insert("HEAD") }
        return methods.sorted()
    }

    private static func matches(_ pattern: [PathComponent], _ segments: ArraySlice<String>) -> Bool {
        guard let first = pattern.first else { return segments.isEmpty }
        if case .catchall = first { return !segments.isEmpty }
        guard let segment = segments.first else { return false }
        switch first {
        case .constant(let constant):
            guard constant == segment else { return false }
        case .parameter, .anything:
            break
        case .catchall:
            return true
        }
        return matches(Array(pattern.dropFirst()), segments.dropFirst())
    }
}
