import Vapor

extension Request {
    /// Decodes a JSON body. Anything but JSON is 415; an empty or unparsable body, or a field of
    /// the wrong type, is 400 with the offending field named. With `allowEmpty`, no body at all
    /// reads as `{}` (every field optional).
    public func decodeJSON<T: Decodable>(_ type: T.Type = T.self, allowEmpty: Bool = false) throws -> T {
        if allowEmpty, (body.data?.readableBytes ?? 0) == 0 {
            return try decodeJSONObject(ByteBuffer(string: "{}"))
        }
        guard let contentType = headers.contentType,
              contentType.type == "application",
              contentType.subType == "json" || contentType.subType.hasSuffix("+json")
        else {
            throw RequestError.unsupportedMediaType(headers.first(name: .contentType))
        }
        guard let body = body.data, body.readableBytes > 0 else {
            throw RequestError.malformedJSON("The request body is empty; send a JSON object.")
        }
        return try decodeJSONObject(body)
    }

    private func decodeJSONObject<T: Decodable>(_ body: ByteBuffer) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: body)
        } catch let error as DecodingError {
            throw RequestError(decoding: error)
        }
    }
}

extension RequestError {
    /// Maps a `DecodingError` to the field it concerns, in the words a client needs.
    init(decoding error: DecodingError) {
        func field(_ path: [any CodingKey]) -> String {
            path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let context):
            guard !context.codingPath.isEmpty else {
                self = .malformedJSON("The request body must be a JSON object.")
                return
            }
            self = .invalidFields([field(context.codingPath): ["Expected \(Self.describe(type))."]])
        case .valueNotFound(_, let context):
            self = .invalidFields([field(context.codingPath): ["This field may not be null."]])
        case .keyNotFound(let key, let context):
            self = .invalidFields([field(context.codingPath + [key]): ["This field is required."]])
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                self = .malformedJSON("The request body is not valid JSON.")
            } else {
                self = .invalidFields([field(context.codingPath): [context.debugDescription]])
            }
        @unknown default:
            self = .malformedJSON("The request body could not be read.")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type, is Substring.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is [Any].Type: "an array"
        default: "a value of another type"
        }
    }
}
