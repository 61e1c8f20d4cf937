import Foundation
import Testing

/// A real MCP server for the tests: `Tests/MCP/tool_server.py`, on the official Python SDK, in its
/// own process on a loopback port it binds itself. Its tools: `echo`, `add`, `fail`, `hang`,
/// `gate` (answers once ``open(gate:)`` is called with its name), `big` and `weather`.
final class MCPToolServer: Sendable {
    let url: String
    let name: String
    private let process: Process
    private let directory: URL

    /// Why it cannot run here, or nil.
    static let unavailableReason: String? = {
        Subprocess.succeeds(["python3", "-c", "import mcp.server.mcpserver, uvicorn"]) ? nil
            : "Python's mcp package (2.x) is missing: the tool tests need a real MCP server. Install it: python3 -m pip install 'mcp==2.3.0'"
    }()

    private init(url: String, name: String, process: Process, directory: URL) {
        (self.url, self.name, self.process, self.directory) = (url, name, process, directory)
    }

    /// Starts one; `token` makes it refuse requests without that bearer token, `json` answer with
    /// JSON bodies instead of event streams.
    /// `hostile` adds 300 tools with 10 KB descriptions and `huge`, whose answer is 10 MB.
    static func start(name: String = "alpha", token: String? = nil, json: Bool = false, hostile: Bool = false) async throws -> MCPToolServer {
        if let reason = unavailableReason { throw MCPServerUnavailable(description: reason) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mcp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("MCP/tool_server.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, "--name", name, "--gates", directory.path, "--calls", directory.appendingPathComponent("calls").path]
            + (token.map { ["--token", $0] } ?? []) + (json ? ["--json"] : []) + (hostile ? ["--hostile"] : [])
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The first line says where it listens; read on a thread of its own (a blocking read), and
        // given up after a minute by ending the process (which ends the read).
        let reader = output.fileHandleForReading
        let watchdog = Task {
            try await Task.sleep(for: .seconds(60))
            kill(process.processIdentifier, SIGKILL)
        }
        let port: Int? = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var line = Data()
                while let byte = try? reader.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line.append(byte) }
                let text = String(decoding: line, as: UTF8.self)
                continuation.resume(returning: text.hasPrefix("PORT ") ? Int(text.dropFirst(5)) : nil)
            }
        }
        watchdog.cancel()
        guard let port else {
            kill(process.processIdentifier, SIGKILL)
            throw MCPServerUnavailable(description: "the MCP test server did not start")
        }
        return MCPToolServer(url: "http://127.0.0.1:\(port)/mcp", name: name, process: process, directory: directory)
    }

    /// The file whose creation opens `gate` (for a process that opens it itself).
    func gatePath(_ gate: String) -> String { directory.appendingPathComponent(gate).path }

    /// Lets every `gate` call waiting for `gate` answer.
    func open(gate: String) {
        FileManager.default.createFile(atPath: directory.appendingPathComponent(gate).path, contents: Data())
    }

    /// The tools called so far, in order.
    var calls: [String] {
        ((try? String(contentsOf: directory.appendingPathComponent("calls"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Ends the process at once (a graceful stop would wait for the clients' open connections),
    /// without blocking the caller.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}

struct MCPServerUnavailable: Error, CustomStringConvertible {
    var description: String
}
