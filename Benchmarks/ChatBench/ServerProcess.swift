import AsyncHTTPClient
import Foundation

/// The `chat-server` under test, in a process of its own so its memory can be read.
///
/// `@unchecked Sendable`: every property is set in `init` and never changed; reading the process's
/// memory from /proc is safe from any thread.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let baseURL: String
    let directory: URL

    /// Starts nothing yet; `environment` without `DATABASE_URL` means a fresh SQLite file of its own.
    init(executable: String, port: Int, pinnedTo core: Int?, environment: [String: String]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        baseURL = "http://127.0.0.1:\(port)"
        let executable = URL(fileURLWithPath: executable).standardizedFileURL.path
        let arguments = ["serve", "--env", "production", "--hostname", "127.0.0.1", "--port", String(port)]
        if let core {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
            process.arguments = ["-c", String(core), executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        process.currentDirectoryURL = directory
        var env = environment
        env["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        if env["DATABASE_URL"] == nil { env["DATABASE_URL"] = "sqlite://\(directory.path)/bench.sqlite3" }
        process.environment = env
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let log = directory.appendingPathComponent("server.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
    }

    func start(client: HTTPClient) async throws {
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let response = try? await client.execute(HTTPClientRequest(url: baseURL + "/readyz"), timeout: .seconds(1)),
               response.status == .ok {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchError("the server did not become ready; see \(directory.path)/server.log")
    }

    /// Resident memory of the server process, in bytes (VmRSS).
    var residentBytes: Int {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kilobytes * 1024
        }
        return 0
    }

    /// CPU time the server process has used (user + system), in seconds.
    var cpuSeconds: Double { ProcessCPU.seconds(of: "\(process.processIdentifier)") ?? 0 }

    func stop() {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// CPU time (user + system) from `/proc/<pid>/stat`, the kernel's own accounting.
enum ProcessCPU {
    /// Of one process (`"self"` for this one), in seconds.
    static func seconds(of pid: String) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return nil }
        return parse(stat)?.seconds
    }

    /// Of every process whose command is `command` (PostgreSQL's server and its backends: `postgres`).
    static func seconds(ofEvery command: String) -> Double {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var total = 0.0
        for pid in pids where pid.first?.isNumber == true {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let parsed = parse(stat), parsed.command == command else { continue }
            total += parsed.seconds
        }
        return total
    }

    private static func parse(_ stat: String) -> (command: Substring, seconds: Double)? {
        guard let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // after the command: state(0) … utime(11) stime(12), in clock ticks
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (stat[stat.index(after: open)..<close], (user + system) / Double(sysconf(Int32(_SC_CLK_TCK))))
    }
}
