import Vapor

/// Several async middlewares run as one. Vapor bridges every `AsyncMiddleware` it is given to its
/// future-based chain with a new task per request; the group is bridged once and calls its members
/// directly, so a request crosses the edge of the application in one task instead of one per
/// concern. Members run in order, the first outermost, exactly as if each were added on its own.
struct MiddlewareGroup: AsyncMiddleware {
    let members: [any AsyncMiddleware]

    init(_ members: [any AsyncMiddleware]) {
        self.members = members
    }

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        try await Link(members: members[...], last: next).respond(to: request)
    }

    /// The chain from one member inwards.
    private struct Link: AsyncResponder {
        let members: ArraySlice<any AsyncMiddleware>
        let last: any AsyncResponder

        func respond(to request: Request) async throws -> Response {
            guard let first = members.first else { return try await last.respond(to: request) }
            return try await first.respond(to: request, chainingTo: Link(members: members.dropFirst(), last: last))
        }
    }
}
