import Foundation
import NIOConcurrencyHelpers
import NIOPosix

/// poppler-utils' `pdfinfo` (a PDF's page count, which also proves it readable) and `pdftotext`
/// (its text, for models that do not read documents), run as subprocesses: no PDF library is in
/// the package set, and a hand-written parser would be the larger risk. Each run is bounded in
/// time and output, gets no environment beyond `PATH` and a locale (none of the server's secrets),
/// and reads only a temporary file the server wrote.
struct PDFTools: Sendable {
    let pdfinfo: String?
    let pdftotext: String?
    let timeout: Duration
    let threadPool: NIOThreadPool

    /// Both tools, when found on `PATH`.
    var available: Bool { pdfinfo != nil && pdftotext != nil }

    static func locate(timeout: Duration, threadPool: NIOThreadPool, path: String? = ProcessInfo.processInfo.environment["PATH"]) -> PDFTools {
        let directories = (path ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        func find(_ tool: String) -> String? {
            directories.map { $0 + "/" + tool }.first { FileManager.default.isExecutableFile(atPath: $0) }
        }
        return PDFTools(pdfinfo: find("pdfinfo"), pdftotext: find("pdftotext"), timeout: timeout, threadPool: threadPool)
    }

    struct Failure: Error {
        var detail: String
    }

    /// The page count of the PDF at `path`.
    func pageCount(of path: String) async throws -> Int {
        guard let pdfinfo else { throw FileError.pdfToolsMissing }
        let output = try await run(pdfinfo, [path], maxOutput: 64 << 10)
        let text = String(decoding: output, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("Pages:") {
            if let pages = Int(line.dropFirst("Pages:".count).trimmingCharacters(in: .whitespaces)), pages >= 0 { return pages }
        }
        throw Failure(detail: "its page count could not be read")
    }

    /// The text of the first `pages` pages of the PDF at `path`, at most `maxBytes` of it.
    func text(of path: String, pages: Int, maxBytes: Int) async throws -> String {
        guard let pdftotext else { throw FileError.pdfToolsMissing }
        let output = try await run(pdftotext, ["-q", "-enc", "UTF-8", "-l", String(max(pages, 1)), path, "-"], maxOutput: maxBytes,
                                   truncates: true)
        // Form feeds separate pages; a cut may split a character.
        return String(decoding: output, as: UTF8.self).replacingOccurrences(of: "\u{0C}", with: "\n\n")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs `tool` on a thread of the pool (it blocks reading the pipe), killing it at the timeout
    /// or, unless `truncates`, when it writes more than `maxOutput` (output past it is then cut).
    private func run(_ tool: String, _ arguments: [String], maxOutput: Int, truncates: Bool = false) async throws -> Data {
        let timeout = self.timeout
        return try await threadPool.runIfActive {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = arguments
            process.environment = ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let timedOut = NIOLockedValueBox(false)
            let deadline = DispatchWorkItem {
                timedOut.withLockedValue { $0 = true }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.seconds, execute: deadline)
            var data = Data()
            let reader = output.fileHandleForReading
            while let chunk = try reader.read(upToCount: 64 << 10), !chunk.isEmpty {
                data.append(chunk)
                if data.count > maxOutput {
                    kill(process.processIdentifier, SIGKILL)
                    data = data.prefix(maxOutput)
                    break
                }
            }
            process.waitUntilExit()
            deadline.cancel()
            if timedOut.withLockedValue({ $0 }) { throw Failure(detail: "reading it took longer than \(timeout)") }
            if data.count >= maxOutput, truncates { return data }
            if data.count >= maxOutput { throw Failure(detail: "the tool's output was too large") }
            guard process.terminationReason == .exit, process.terminationStatus == 0 else {
                throw Failure(detail: "it is damaged or encrypted")
            }
            return data
        }
    }
}
