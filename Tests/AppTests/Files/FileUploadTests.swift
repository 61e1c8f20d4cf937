import AnthropicEmulator
@testable import App
import Foundation
import NIOCore
import Testing
import VaporTesting

@Suite("Files: upload, read, delete; hostile uploads")
struct FileUploadTests {
    @Test("an upload is typed from its bytes, kept whole, and served only to its owner with safe headers", arguments: TestDatabase.all)
    func roundTrip(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let owner = try await t.register(), other = try await t.register()
            // The client claims text; the bytes are a PNG.
            let file = try await t.uploaded(TestFiles.png, name: "shot.txt", token: owner.access)
            #expect(file.media_type == "image/png")
            #expect(file.size == TestFiles.png.count)
            #expect(file.sha256 == TestFiles.png.sha256Hex)
            #expect(file.name == "shot.txt")

            let shown = try await t.send(.GET, "/api/files/\(file.id)/", token: owner.access)
            #expect(shown.status == .ok)
            #expect(try shown.decoded(FileBody.self) == file)

            let content = try await t.send(.GET, "/api/files/\(file.id)/content/", token: owner.access)
            #expect(content.status == .ok)
            #expect(Data(buffer: content.body) == TestFiles.png)
            #expect(content.headers.first(name: .contentType) == "image/png")
            #expect(content.headers.first(name: "X-Content-Type-Options") == "nosniff")
            #expect(content.headers.first(name: .contentDisposition)?.hasPrefix("inline;") == true)
            let etag = try #require(content.headers.first(name: .eTag))
            let again = try await t.send(.GET, "/api/files/\(file.id)/content/", token: owner.access, headers: ["If-None-Match": etag])
            #expect(again.status == .notModified)

            // Someone else's file is as absent as one that never existed; no token is 401.
            for path in ["/api/files/\(file.id)/", "/api/files/\(file.id)/content/"] {
                #expect(try await t.send(.GET, path, token: other.access).problem().status == 404)
                #expect(try await t.send(.GET, path).status == .unauthorized)
            }
            #expect(try await t.send(.DELETE, "/api/files/\(file.id)/", token: other.access).status == .notFound)
            #expect(try await t.send(.GET, "/api/files/not-a-uuid/", token: owner.access).status == .badRequest)

            #expect(try await t.send(.DELETE, "/api/files/\(file.id)/", token: owner.access).status == .noContent)
            #expect(try await t.send(.GET, "/api/files/\(file.id)/", token: owner.access).status == .notFound)
            #expect(try await t.fileRows() == (0, 0, 0))
        }
    }

    @Test("text is served as a download, never inline, whatever it holds", arguments: TestDatabase.all)
    func textIsADownload(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let html = Data("<html><script>alert(1)</script></html>".utf8)
            let file = try await t.uploaded(html, name: "page.html", token: session.access)
            #expect(file.media_type == "text/plain")
            let content = try await t.send(.GET, "/api/files/\(file.id)/content/", token: session.access)
            #expect(content.headers.first(name: .contentType) == "text/plain; charset=utf-8")
            #expect(content.headers.first(name: .contentDisposition)?.hasPrefix("attachment;") == true)
            #expect(content.headers.first(name: "Content-Security-Policy")?.contains("sandbox") == true)
            let markdown = try await t.uploaded(Data("# Notes\n".utf8), name: "notes.md", token: session.access)
            #expect(markdown.media_type == "text/markdown")
        }
    }

    @Test("a large file goes to the database in chunks and streams out whole", arguments: TestDatabase.all)
    func chunked(_ database: TestDatabase) async throws {
        try await withTestApp(database) { t in
            let session = try await t.register()
            let text = Data((0..<700_000).map { UInt8(ascii: "a") + UInt8($0 % 26) })
            let file = try await t.uploaded(text, name: "big.txt", token: session.access)
            #expect(try await t.fileRows().chunks == 3)
            let content = try await t.send(.GET, "/api/files/\(file.id)/content/", token: session.access)
            #expect(Data(buffer: content.body) == text)
            #expect(content.headers.first(name: .contentLength) == String(text.count))
        }
    }

    @Test("hostile uploads are refused with a clear 4xx, and nothing is stored", arguments: TestDatabase.all)
    func hostile(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["FILE_MAX_SIZE": "64kb", "FILE_STORAGE_PER_USER": "100kb"]) { t in
            let session = try await t.register()
            let truncatedPNG = TestFiles.png.prefix(TestFiles.png.count - 6)
            let cases: [(String, Data, String, Int, String?)] = [
                ("binary", TestFiles.binary, "tool.exe", 415, "unsupported_file_type"),
                ("a PNG's type claimed for binary", TestFiles.binary, "shot.png", 415, "unsupported_file_type"),
                ("zero bytes", Data(), "empty.txt", 400, "empty_file"),
                ("a truncated PNG", Data(truncatedPNG), "cut.png", 400, "damaged_file"),
                ("invalid UTF-8", Data([0x68, 0x69, 0xC3, 0x28]), "bad.txt", 415, "unsupported_file_type"),
                ("over FILE_MAX_SIZE", Data(repeating: 0x61, count: 65 << 10), "big.txt", 413, "file_too_large"),
                ("a name with NUL", Data("x".utf8), "a\u{0}b.txt", 400, nil),
                ("a name with CR LF", Data("x".utf8), "a\r\nX-Evil: 1.txt", 400, nil),
                ("a name of 300 characters", Data("x".utf8), String(repeating: "é", count: 300), 400, nil),
                ("a name that is a path to nothing", Data("x".utf8), "../", 400, nil),
            ]
            for (what, data, name, status, code) in cases {
                let response = try await t.upload(data, name: name, token: session.access)
                #expect(response.status.code == UInt(status), "\(what): \(response.status) \(response.body.string)")
                if response.status.code == UInt(status) {
                    #expect(try response.problem().code == code, "\(what)")
                }
            }
            #expect(try await t.fileRows() == (0, 0, 0))

            // RFC 5987 names are decoded, then checked like any other.
            let encoded = TestFiles.multipart([("file", nil, nil, Data("x".utf8))])
            var withStar = encoded.body.getString(at: 0, length: encoded.body.readableBytes) ?? ""
            withStar = withStar.replacingOccurrences(of: "name=\"file\"", with: "name=\"file\"; filename*=UTF-8''a%00b.txt")
            #expect(try await t.uploadBody(ByteBuffer(string: withStar), contentType: encoded.contentType, token: session.access).status == .badRequest)
            let unicode = withStar.replacingOccurrences(of: "a%00b.txt", with: "r%C3%A9sum%C3%A9.txt")
            let accepted = try await t.uploadBody(ByteBuffer(string: unicode), contentType: encoded.contentType, token: session.access)
            #expect(try accepted.decoded(FileBody.self).name == "résumé.txt")
            #expect(try await t.send(.DELETE, "/api/files/\(try accepted.decoded(FileBody.self).id)/", token: session.access).status == .noContent)

            // Not multipart; no `file` part; two of them.
            #expect(try await t.send(.POST, "/api/files/", json: ["file": "x"], token: session.access).status == .unsupportedMediaType)
            let noFile = TestFiles.multipart([("other", "a.txt", "text/plain", Data("x".utf8))])
            #expect(try await t.uploadBody(noFile.body, contentType: noFile.contentType, token: session.access).status == .badRequest)
            let two = TestFiles.multipart([("file", "a.txt", nil, Data("x".utf8)), ("file", "b.txt", nil, Data("y".utf8))])
            #expect(try await t.uploadBody(two.body, contentType: two.contentType, token: session.access).status == .badRequest)
            var cut = TestFiles.multipart([("file", "a.txt", nil, Data("x".utf8))]).body
            cut.moveWriterIndex(to: cut.writerIndex - 10)
            #expect(try await t.uploadBody(cut, contentType: "multipart/form-data; boundary=chat-test-boundary", token: session.access).status == .badRequest)
            // A part with many headers, or a large part that is not the file: refused, in constant work per byte.
            var crowded = "--chat-test-boundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
            crowded += (0..<20).map { "X-Header-\($0): a\r\n" }.joined() + "\r\nx\r\n--chat-test-boundary--\r\n"
            #expect(try await t.uploadBody(ByteBuffer(string: crowded), contentType: "multipart/form-data; boundary=chat-test-boundary",
                                           token: session.access).status == .badRequest)
            let padded = TestFiles.multipart([("note", nil, nil, Data(repeating: 0x0D, count: 70 << 10)), ("file", "a.txt", nil, Data("x".utf8))])
            #expect(try await t.uploadBody(padded.body, contentType: padded.contentType, token: session.access).status == .badRequest)
            #expect(try await t.fileRows() == (0, 0, 0))

            // A path keeps only its last part; quotes stay in the name and out of the header's syntax.
            let pathed = try await t.uploaded(Data("x".utf8), name: "../../etc/passwd", token: session.access)
            #expect(pathed.name == "passwd")
            let quoted = try await t.uploaded(Data("x".utf8), name: "say \\\"hi\\\".txt", token: session.access)
            let disposition = try #require(try await t.send(.GET, "/api/files/\(quoted.id)/content/", token: session.access)
                .headers.first(name: .contentDisposition))
            // Exactly the two quotes around the plain name: nothing in the name can end it early.
            #expect(disposition.hasPrefix("attachment; filename=\"say "))
            #expect(disposition.filter { $0 == "\"" }.count == 2)
            #expect(!disposition.contains("\r") && !disposition.contains("\n"))

            // The owner's quota: 100 KB together.
            _ = try await t.uploaded(Data(repeating: 0x62, count: 60 << 10), name: "one.txt", token: session.access)
            let over = try await t.upload(Data(repeating: 0x63, count: 60 << 10), name: "two.txt", token: session.access)
            #expect(over.status == .payloadTooLarge)
            #expect(try over.problem().code == "storage_quota_exceeded")
            #expect(try await t.fileRows().files == 3)
        }
    }

    @Test("PDFs: pages counted by pdfinfo; too many pages, a page-count bomb and a damaged file are refused", arguments: TestDatabase.all)
    func pdfs(_ database: TestDatabase) async throws {
        try await withTestApp(database, settings: ["FILE_PDF_MAX_PAGES": "2"]) { t in
            let session = try await t.register()
            guard try await t.services.files.pdf.available else {
                Issue.record("poppler-utils is not installed: PDFs cannot be tested")
                return
            }
            let file = try await t.uploaded(TestFiles.pdf(["Kumquat harvest report"]), name: "report.pdf", token: session.access)
            #expect(file.media_type == "application/pdf")
            let three = try await t.upload(TestFiles.pdf(["one", "two", "three"]), name: "long.pdf", token: session.access)
            #expect(three.status == .badRequest)
            #expect(try three.problem().code == "too_many_pages")
            let bomb = try await t.upload(TestFiles.pdf(["x"], count: 100_000_000), name: "bomb.pdf", token: session.access)
            #expect(bomb.status == .badRequest)
            #expect(try bomb.problem().code == "damaged_file")
            // A title that prints a false page count before the true one.
            let liar = try await t.upload(TestFiles.pdf(["one", "two", "three"], title: "x\nPages: 1\ny"), name: "liar.pdf", token: session.access)
            #expect(liar.status == .badRequest)
            #expect(try liar.problem().code == "too_many_pages")
            var damaged = TestFiles.pdf(["x"])
            damaged.replaceSubrange(20..<200, with: Data(repeating: 0x20, count: 180))
            let broken = try await t.upload(damaged, name: "broken.pdf", token: session.access)
            #expect(broken.status == .badRequest)
            #expect(try await t.fileRows().files == 1)
        }
    }

    @Test("FILE_STORAGE=directory keeps bytes on disk; deleting the file deletes them", arguments: TestDatabase.all)
    func directoryStorage(_ database: TestDatabase) async throws {
        let directory = NSTemporaryDirectory() + "chat-files-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withTestApp(database, settings: ["FILE_STORAGE": "directory:" + directory]) { t in
            let session = try await t.register()
            let file = try await t.uploaded(TestFiles.png, name: "a.png", token: session.access)
            #expect(FileManager.default.contents(atPath: directory + "/" + file.id) == TestFiles.png)
            #expect(try await t.fileRows().chunks == 0)
            let content = try await t.send(.GET, "/api/files/\(file.id)/content/", token: session.access)
            #expect(Data(buffer: content.body) == TestFiles.png)
            #expect(try await t.send(.DELETE, "/api/files/\(file.id)/", token: session.access).status == .noContent)
            #expect(!FileManager.default.fileExists(atPath: directory + "/" + file.id))

            // Bytes gone from under the server: an error status, never a 200 with a body cut short.
            let lost = try await t.uploaded(TestFiles.png, name: "b.png", token: session.access)
            try FileManager.default.removeItem(atPath: directory + "/" + lost.id)
            let missing = try await t.send(.GET, "/api/files/\(lost.id)/content/", token: session.access)
            #expect(missing.status == .internalServerError)
            #expect(try missing.problem().title == "File content missing")
        }
    }

    @Test("an upload has FILE_UPLOAD_TIMEOUT to arrive; every other request keeps REQUEST_TIMEOUT")
    func uploadTimeout() async throws {
        try await withTestApp(.sqlite, settings: ["FILE_UPLOAD_TIMEOUT": "10m", "REQUEST_TIMEOUT": "20s"]) { t in
            let middleware = RequestTimeoutMiddleware(timeout: t.settings.protection.requestTimeout,
                                                      longer: FilesController.uploadTimeout(t.settings.files))
            func request(_ method: HTTPMethod, _ path: String) -> Request {
                Request(application: t.app, method: method, url: URI(string: path), on: t.app.eventLoopGroup.next())
            }
            #expect(middleware.timeout(for: request(.POST, "/api/files/")) == .seconds(600))
            #expect(middleware.timeout(for: request(.POST, "/api/files")) == .seconds(600))
            #expect(middleware.timeout(for: request(.GET, "/api/files/")) == .seconds(20))
            #expect(middleware.timeout(for: request(.POST, "/api/chat/")) == .seconds(20))
            #expect(middleware.timeout(for: request(.POST, "/api/files/x/")) == .seconds(20))
        }
    }

    @Test("uploads racing past the owner's quota: exactly as many as fit are stored", arguments: TestDatabase.all)
    func quotaRace(_ database: TestDatabase) async throws {
        try await database.onFile { file in
            try await withTestApp(database, settings: file.merging(["FILE_STORAGE_PER_USER": "100kb"]) { $1 }) { t in
                let session = try await t.register()
                let statuses = try await withThrowingTaskGroup(of: UInt.self) { group in
                    for index in 0..<4 {
                        group.addTask {
                            try await t.upload(Data(repeating: UInt8(ascii: "a") + UInt8(index), count: 40 << 10), name: "\(index).txt",
                                               token: session.access).status.code
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(statuses.filter { $0 == 201 }.count == 2, "\(statuses)")
                #expect(statuses.filter { $0 == 413 }.count == 2, "\(statuses)")
                #expect(try await t.fileRows().files == 2)
            }
        }
    }

    @Test("without poppler-utils a PDF is refused clearly (415), and nothing is stored")
    func withoutPoppler() async throws {
        try await withTestApp(.sqlite) { t in
            let session = try await t.register()
            var library = try t.services.files
            library.pdf = PDFTools(pdfinfo: nil, pdftotext: nil, timeout: .seconds(5), threadPool: t.app.threadPool)
            let (body, contentType) = TestFiles.multipart([("file", "report.pdf", "application/pdf", TestFiles.pdf(["Kumquat"]))])
            let request = Request(application: t.app, method: .POST, url: URI(string: "/api/files/"),
                                  headers: ["Content-Type": contentType], collectedBody: body, on: t.app.eventLoopGroup.next())
            await #expect(throws: FileError.pdfToolsMissing) {
                _ = try await library.upload(request, for: try #require(UUID(uuidString: session.user.id)), on: t.db)
            }
            #expect(FileError.pdfToolsMissing.problem.status == .unsupportedMediaType)
            #expect(try await t.fileRows().files == 0)
        }
    }
}
