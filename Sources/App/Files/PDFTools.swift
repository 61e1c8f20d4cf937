import Foundation
import NIOConcurrencyHelpers
import NIOPosix

/// poppler-utils' `pdfinfo` (a PDF's page count, which also proves it readable) and `pdftotext`
/// (its text, for models that do not read documents), run as subprocesses: no PDF library is in
/// the package set, and a hand-written parser would be the larger risk. Each run is bounded in
/// time, output, memory and CPU (`prlimit`, where there is one), gets no environment beyond `PATH`
/// and a locale (none of the server's secrets), and reads only a temporary file the server wrote.
/// Runs wait on a pool of their own, two at a time, so that PDFs never hold the threads the rest
/// of the server needs (SQLite, bcrypt, files).
struct PDFTools: Sendable {
    let pdfinfo: String?
    let pdftotext: String?
    let timeout: Duration
    let threadPool: NIOThreadPool
    /// `prlimit`, to bound a run's memory (1 GiB of address space) and CPU time.
    var prlimit: String? = nil

    /// The address space a run may take.
    static let maxMemory = 1 << 30

    /// Both tools, when found on `PATH`.
    var available: Bool { pdfinfo != nil && pdftotext != nil }

    static func locate(timeout: Duration, threadPool: NIOThreadPool, path: String? = ProcessInfo.processInfo.environment["PATH"]) -> PDFTools {
        let directories = (path ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        func find(_ tool: String) -> String? {
            directories.map { $0 + "/" + tool }.first { FileManager.default.isExecutableFile(atPath: $0) }
        }
        return PDFTools(pdfinfo: find("pdfinfo"), pdftotext: find("pdftotext"), timeout: timeout, threadPool: threadPool,
                        prlimit: find("prlimit"))
    }

    struct Failure: Error {
        var detail: String
    }

    /// The page count of the PDF at `path`.
    func pageCount(of path: String) async throws -> Int {
        guard let pdfinfo else { throw FileError.pdfToolsMissing }
        let output = try await run(pdfinfo, [path], maxOutput: 64 << 10)
        let text = String(decoding: output, as: UTF8.self)
        // The last `Pages:` line: the document's own fields (a title with a newline in it) come before it.
        guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("Pages:") }),
              let pages = Int(line.dropFirst("Pages:".count).trimmingCharacters(in: .whitespaces)), pages >= 0 else {
            throw Failure(detail: "its page count could not be read")
        }
        return pages
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
        let (executable, fullArguments) = prlimit.map {
            ($0, ["--as=\(Self.maxMemory)", "--cpu=\(Int(timeout.seconds.rounded(.up)))", "--", tool] + arguments)
        } ?? (tool, arguments)
        return try await threadPool.runIfActive {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = fullArguments
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
