import Vapor

/// What can be wrong with a request before any feature looks at it.
public enum RequestError: HTTPProblemConvertible, Equatable {
    case malformedJSON(String)
    case unsupportedMediaType(String?)
    case invalidFields([String: [String]])
    case invalidParameter(name: String, message: String)
    case routeNotFound(method: String, path: String)
    case methodNotAllowed(method: String, allowed: [String])
    case hostNotAllowed(String)

    public var problem: HTTPProblem {
        switch self {
        case .malformedJSON(let detail):
            return HTTPProblem(.badRequest, title: "Malformed request body", detail: detail)
        case .unsupportedMediaType(let given):
            let detail = given.map { "Send JSON with Content-Type: application/json (got \($0))." }
                ?? "Send JSON with Content-Type: application/json."
            return HTTPProblem(.unsupportedMediaType, detail: detail)
        case .invalidFields(let errors):
            let names = errors.keys.sorted().joined(separator: ", ")
            return HTTPProblem(.badRequest, title: "Invalid input", detail: "Check these fields: \(names).", fieldErrors: errors)
        case .invalidParameter(let name, let message):
            return HTTPProblem(.badRequest, title: "Invalid input", detail: "\(name): \(message)", fieldErrors: [name: [message]])
        case .routeNotFound(let method, let path):
            return HTTPProblem(.notFound, detail: "Nothing is served at \(method) \(path).")
        case .methodNotAllowed(let method, let allowed):
            return HTTPProblem(
                .methodNotAllowed,
                detail: "\(method) is not allowed here; use \(allowed.joined(separator: ", ")).",
                headers: ["Allow": allowed.joined(separator: ", ")]
            )
        case .hostNotAllowed(let host):
            return HTTPProblem(.badRequest, title: "Host not allowed", detail: "'\(host)' is not in ALLOWED_HOSTS.")
        }
    }
}
