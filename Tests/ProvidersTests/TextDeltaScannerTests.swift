import Foundation
import Testing
@testable import Providers

@Suite("Text delta scanner")
struct TextDeltaScannerTests {
    private struct Reference: Decodable {
        struct Delta: Decodable, Equatable {
            var type: String
            var text: String?
        }
        var delta: Delta
    }

    /// What JSONDecoder makes of `json`: the reference the scanner must agree with.
    private func reference(_ json: String) -> BlockDelta? {
        guard let decoded = try? JSONDecoder().decode(Reference.self, from: Data(json.utf8)) else { return nil }
        return BlockDelta(type: decoded.delta.type, text: decoded.delta.text)
    }

    private func event(_ text: String) -> String {
        let encoded = String(decoding: try! JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed]), as: UTF8.self)
        return #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":\#(encoded.dropFirst().dropLast())}}"#
    }

    @Test("text deltas read the same as with JSONDecoder, escapes and all")
    func agreesWithJSONDecoder() {
        let texts = ["Hello", "", " wörld 👋🏽", "quote \" backslash \\ slash /", "lines\n\r\ttabs", "\u{0}\u{1F}control",
                     "emoji 🇫🇷 and 𝄞", "\u{2028}\u{2029}", "{\"delta\":{\"type\":\"x\"}}", String(repeating: "long ", count: 500)]
        for text in texts {
            let json = event(text)
            let scanned = TextDeltaScanner.scan(json)
            #expect(scanned == reference(json), "\(json)")
            #expect(scanned?.text == text)
        }
    }

    @Test("unicode escapes, surrogate pairs, extra fields and white space")
    func escapesAndShapes() {
        let cases = [
            #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\u00e9\ud83d\ude00\u0041"}}"#,
            #"{ "index" : 1 , "delta" : { "text" : "x" , "type" : "text_delta", "extra": [1, {"a": null}, true, -2.5e3] } , "type" : "content_block_delta" }"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
        ]
        for json in cases {
            #expect(TextDeltaScanner.scan(json) == reference(json), "\(json)")
        }
        #expect(TextDeltaScanner.scan(cases[0])?.text == "é😀A")
    }

    @Test("malformed input is left to JSONDecoder")
    func malformed() {
        for json in [#"{"delta":{"type":"text_delta","text":"unterminated}}"#, #"{"delta":{"type":"text_delta","text":"\ud83d"}}"#,
                     #"{"delta":{"type":"text_delta","text":"x"}} trailing"#, #"{"delta":{"type":"text_delta","text":"bad \q"}}"#,
                     #"{"delta":{"text":"no type"}}"#, "[]", "", #"{"delta":{"type":"text_delta","text":"x"},"index":01x}"#] {
            #expect(TextDeltaScanner.scan(json) == nil, "\(json)")
        }
    }

    @Test("random text round-trips")
    func randomText() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ab \"\\/\n\t\u{0}\u{7f}é€😀𝄞") + [Character("\u{1F}")]
        for _ in 0..<500 {
            let text = String((0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator) ?? "a" })
            #expect(TextDeltaScanner.scan(event(text))?.text == text)
        }
    }
}
