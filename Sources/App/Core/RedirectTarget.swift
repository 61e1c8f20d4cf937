import Foundation

/// A place the server may send a browser back to (`next=` of a sign-in), checked so that it can
/// only lead to this server or to an allowed origin.
///
/// Browsers forgive malformed URLs in ways a check cannot predict: they drop tabs and newlines
/// (`/\t/evil.example` becomes `//evil.example`, another host), turn backslashes into slashes, and
/// read `//host` as a host. So a target is accepted only when it is printable ASCII without a
/// backslash and survives parsing and re-serialising unchanged; it has no user info and no
/// fragment (the server writes the fragment); and it is either an absolute path on this server
/// (`/…`, never `//…`) or an `http(s)` URL on one of `allowedOrigins`. The redirect is made from the
/// parsed form, never from the raw request value.
struct RedirectTarget: Sendable, Equatable {
    private let components: URLComponents

    /// The target as it will be written into `Location`.
    var url: String { components.string ?? "/" }

    init?(_ raw: String, allowedOrigins: Set<String>) {
        guard !raw.isEmpty, raw.utf8.count <= 2048,
              raw.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }),
              let components = URLComponents(string: raw), components.string == raw,
              components.user == nil, components.password == nil, components.fragment == nil
        else { return nil }
        if let scheme = components.scheme?.lowercased() {
            guard scheme == "http" || scheme == "https", let host = components.host?.lowercased(), !host.isEmpty,
                  allowedOrigins.contains("\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? ""))
            else { return nil }
        } else {
            // A path on this server: no host part, and not `//` (which browsers read as a host).
            guard components.host == nil, components.path.hasPrefix("/"), !components.path.hasPrefix("//") else { return nil }
        }
        self.components = components
    }

    /// The target with its fragment set to the form-encoded `pairs`.
    func withFragment(_ pairs: [(String, String)]) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+#")
        var target = components
        target.percentEncodedFragment = pairs
            .map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
            .joined(separator: "&")
        return target.string ?? url
    }
}
