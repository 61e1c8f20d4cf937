import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing

/// The `chat-server` binary (built with the tests) running as a process of its own, for what only a
/// real process shows: a SIGTERM or a `kill -9` in the middle of its work.
final class ServerProcess: @unchecked Sendable {
    // @unchecked: `process` is set once in `start` and only read after; Process itself is thread-safe for these calls.
    let baseURL: String
    let log: URL
    private let process: Process

    /// The binary next to the test bundle: `swift test` builds every product of the package.
    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("chat-server")
    }

    /// Starts `chat-server serve` on a free port with `environment` (and nothing else of this
    /// process's), and waits until it answers `/healthz`.
    static func start(_ environment: [String: String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> ServerProcess {
        let port = try freeLoopbackPort()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("chat-server-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--env", "production", "--no-migrate", "--hostname", "127.0.0.1", "--port", String(port)]
        process.environment = environment.merging(["PATH": "/usr/bin:/bin", "LOG_FORMAT": "text"]) { a, _ in a }
        process.currentDirectoryURL = URL(fileURLWithPath: FileManager.default.temporaryDirectory.path)
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let server = ServerProcess(baseURL: "http://127.0.0.1:\(port)", log: log, process: process)
        do {
            try await waitUntil("chat-server to answer on port \(port)", timeout: .seconds(60), sourceLocation: sourceLocation) {
                guard process.isRunning else { throw ServerExited(log: server.logText) }
                return (try? await LiveHTTP.send(.GET, server.baseURL + "/healthz", headers: ["Host": "localhost"]).status) == .ok
            }
        } catch {
            server.kill()
            throw error
        }
        return server
    }

    private init(baseURL: String, log: URL, process: Process) {
        self.baseURL = baseURL
        self.log = log
        self.process = process
    }

    var isRunning: Bool { process.isRunning }
    var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// `kill -9`: the process ends at once, finishing nothing.
    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// SIGTERM, as a service manager stops it; returns how long it took to exit.
    func terminate(within limit: Duration) async throws -> Duration {
        let sent = sigterm()
        return try await waitForExit(since: sent, within: limit)
    }

    /// Sends SIGTERM and returns at once, with the instant it was sent.
    func sigterm() -> ContinuousClock.Instant {
        let sent = ContinuousClock.now
        process.terminate()
        return sent
    }

    /// Waits for the process to exit, at most `limit` after `sent`; answers how long after it did.
    func waitForExit(since sent: ContinuousClock.Instant, within limit: Duration,
                     sourceLocation: SourceLocation = #_sourceLocation) async throws -> Duration {
        try await waitUntil("chat-server to exit", timeout: limit - sent.duration(to: .now), sourceLocation: sourceLocation) {
            !process.isRunning
        }
        return sent.duration(to: .now)
    }

    /// The exit status, once it has exited (a signal's number when a signal ended it).
    var exitStatus: Int32 { process.terminationStatus }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: log)
    }
}

/// The server process ended before it answered.
struct ServerExited: Error, CustomStringConvertible {
    let log: String
    var description: String { "chat-server exited:\n\(log)" }
}
