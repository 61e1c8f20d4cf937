import Vapor

/// An RFC 9457 problem: what the client is told when a request fails.
public struct HTTPProblem: Error, Sendable {
    public var status: HTTPResponseStatus
    public var title: String
    public var detail: String?
    public var type: String
    /// Field validation errors: field name → messages.
    public var fieldErrors: [String: [String]]?
    /// Extra response headers, e.g. `WWW-Authenticate` or `Retry-After`.
    public var headers: HTTPHeaders
    /// An extension member naming the problem for programs (`"code": "quota_exceeded"`).
    public var code: String?

    public init(
        _ status: HTTPResponseStatus,
        title: String? = nil,
        detail: String? = nil,
        type: String = "about:blank",
        fieldErrors: [String: [String]]? = nil,
        headers: HTTPHeaders = [:],
        code: String? = nil
    ) {
        self.status = status
        self.title = title ?? status.reasonPhrase
        self.detail = detail
        self.type = type
        self.fieldErrors = fieldErrors
        self.headers = headers
        self.code = code
    }

    /// The JSON body, `application/problem+json`.
    struct Body: Codable, Sendable {
        var type: String
        var title: String
        var status: Int
        var detail: String?
        var errors: [String: [String]]?
        var code: String?
    }

    var body: Body { Body(type: type, title: title, status: Int(status.code), detail: detail, errors: fieldErrors, code: code) }

    /// The problem as JSON: the one encoding of it, for responses and for stream `error` events.
    var json: Data {
        // A problem body holds only strings and numbers: it always encodes.
        return (try? JSONCoding.makeEncoder().encode(body)) ?? Data(#"{"status":500,"title":"Internal Server Error"}"#.utf8)
    }

    func response() -> Response {
        var headers = self.headers
        headers.replaceOrAdd(name: .contentType, value: "application/problem+json")
        return Response(status: status, headers: headers, body: .init(data: json))
    }
}

/// An error of one of our features that knows which problem it is for the client.
public protocol HTTPProblemConvertible: Error {
    var problem: HTTPProblem { get }
}

extension HTTPProblem: HTTPProblemConvertible {
    public var problem: HTTPProblem { self }
}
