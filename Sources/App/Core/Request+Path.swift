import Vapor

extension HTTPHeaders {
    /// The token of `Authorization: Bearer <token>`, exactly as Vapor's `bearerAuthorization` reads
    /// it — the header split at spaces into two non-empty parts, the first `bearer` in any case — but
    /// on its bytes: Vapor splits the header into `Character`s, a tenth of an authenticated
    /// request's CPU with a JWT of 300 bytes, and it is read on every one.
    var bearerToken: String? {
        guard let value = first(name: .authorization) else { return nil }
        // The runs of bytes between spaces: exactly two (kept without an array: this runs per request).
        let bytes = value.utf8
        var scheme: Swift.Range<String.Index>?
        var token: Swift.Range<String.Index>?
        var index = bytes.startIndex
        while index != bytes.endIndex {
            guard bytes[index] != UInt8(ascii: " ") else {
                index = bytes.index(after: index)
                continue
            }
            let start = index
            while index != bytes.endIndex, bytes[index] != UInt8(ascii: " ") { index = bytes.index(after: index) }
            guard token == nil else { return nil }
            if scheme == nil { scheme = start..<index } else { token = start..<index }
        }
        guard let scheme, let token, bytes[scheme].count == 6,
              zip(bytes[scheme], "bearer".utf8).allSatisfy({ $0 | 0x20 == $1 }) else { return nil }
        return String(value[token])
    }
}

extension Request {
    /// `url.path`, made once per request: Vapor rebuilds it through Foundation on every read, and
    /// every layer of the edge reads it.
    var path: String {
        if let made = storage[PathKey.self] { return made }
        let made = url.path
        storage[PathKey.self] = made
        return made
    }

    private struct PathKey: StorageKey {
        typealias Value = String
    }
}
