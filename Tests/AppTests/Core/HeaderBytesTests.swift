@testable import App
import Testing
import Vapor

@Suite("Headers read on every request, read on bytes")
struct HeaderBytesTests {
    @Test("reads every header as Vapor's bearerAuthorization does", arguments: [
        "Bearer abc.def.ghi", "bearer abc", "BEARER abc", "bEaReR abc", "Bearer  abc", "  Bearer abc  ", "Bearer", "Bearer ",
        "Bearer a b", "Basic abc", "Bearerx abc", "Beare abc", "Bearer\tabc", "Bearer\u{0}abc", "Bearer é-token", "Béarer abc",
        "Bearer\u{00A0}abc", "", " ", "Bearer " + String(repeating: "x", count: 10_000), "bearer cs_live_" + String(repeating: "é", count: 64),
        "\u{212A}earer abc", "Bearer abc\r",
    ])
    func sameAsVapor(_ header: String) {
        var headers = HTTPHeaders()
        headers.add(name: .authorization, value: header)
        #expect(headers.bearerToken == headers.bearerAuthorization?.token)
    }

    @Test("the Host header's name: lowercased, without its port; nil unless ASCII letters, digits and . - [ ] :", arguments: [
        ("Chat.Example.com:8080", "chat.example.com"), ("[::1]:8080", "[::1]"), ("LOCALHOST", "localhost"), ("127.0.0.1", "127.0.0.1"),
        ("", nil), (":80", nil), ("evil.example/chat", nil), ("chat.example.com@evil", nil), ("\u{212A}.example", nil),
        ("é.example", nil), ("a b", nil), ("x\u{0}y", nil), (String(repeating: "a", count: 253), String(repeating: "a", count: 253)),
        (String(repeating: "a", count: 254), nil),
    ] as [(String, String?)])
    func hostNames(_ header: String, _ expected: String?) {
        #expect(AllowedHosts.hostName(fromHeader: header) == expected)
    }

    @Test("no Authorization header, no token")
    func absent() {
        #expect(HTTPHeaders().bearerToken == nil)
    }
}
