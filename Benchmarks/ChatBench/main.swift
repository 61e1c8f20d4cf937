import AnthropicEmulator
import AsyncHTTPClient
import Foundation

/// chat-bench: measures what the server adds to a streamed reply, and what an open stream costs.
///
///     swift build -c release && swift run -c release chat-bench [--streams 100,1000] [--idle 10000]
///         [--tokens 40] [--token-delay-ms 20] [--server .build/release/chat-server] [--port 8321] [--pin]
///
/// It runs the Anthropic emulator in this process (each reply `--tokens` deltas, `--token-delay-ms`
/// apart, each stamped with the time the emulator sent it), starts the server as a separate process
/// pointed at it, and for each N opens N streams on N chats, sends N messages at once and reads
/// every delta: relay overhead is when this client parsed a delta minus when the emulator sent it.
/// Then it opens `--idle` streams that stay idle, and divides the server's growth in resident
/// memory by their number.
struct Options {
    var streams = [100, 1000]
    var idle = 10_000
    var tokens = 40
    var tokenDelay = 20
    var server = ".build/release/chat-server"
    var port = 8321
    /// Run the server on the last core and this process on the others, so they do not compete.
    var pin = false

    init(_ arguments: [String]) throws {
        var rest = arguments.dropFirst()
        while let flag = rest.popFirst() {
            if flag == "--pin" {
                pin = true
                continue
            }
            guard let value = rest.popFirst() else { throw BenchError("\(flag) needs a value") }
            switch flag {
            case "--streams": streams = value.split(separator: ",").compactMap { Int($0) }
            case "--idle": idle = Int(value) ?? idle
            case "--tokens": tokens = Int(value) ?? tokens
            case "--token-delay-ms": tokenDelay = Int(value) ?? tokenDelay
            case "--server": server = value
            case "--port": port = Int(value) ?? port
            default: throw BenchError("unknown option \(flag)")
            }
        }
    }
}

func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1_048_576) }

/// Runs `work` on every element with at most `width` at once.
func forEach<T: Sendable, R: Sendable>(_ items: [T], width: Int, _ work: @escaping @Sendable (T) async throws -> R) async throws -> [R] {
    try await withThrowingTaskGroup(of: (Int, R).self) { group in
        var results = [R?](repeating: nil, count: items.count)
        var next = 0
        for _ in 0..<min(width, items.count) {
            let index = next
            group.addTask { (index, try await work(items[index])) }
            next += 1
        }
        while let (index, result) = try await group.next() {
            results[index] = result
            if next < items.count {
                let index = next
                group.addTask { (index, try await work(items[index])) }
                next += 1
            }
        }
        return results.compactMap { $0 }
    }
}

func run() async throws {
    let options = try Options(CommandLine.arguments)
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)

    let emulator = try await AnthropicEmulator.start()
    emulator.stopRecording()
    emulator.setDefault(.reply(Script.Reply(
        Array(repeating: "x", count: options.tokens), delay: .milliseconds(options.tokenDelay),
        includeUnusedEvents: false, stampChunks: true
    )))

    var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(10), read: .seconds(120)))
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 30_000
    configuration.connectionPool.idleTimeout = .seconds(300)
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)

    let cores = ProcessInfo.processInfo.activeProcessorCount
    if options.pin, cores > 1 {
        // every thread of this process to the other cores (taskset -a: the threads already running too)
        let taskset = Process()
        taskset.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        taskset.arguments = ["-a", "-p", "-c", "0-\(cores - 2)", String(ProcessInfo.processInfo.processIdentifier)]
        taskset.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try taskset.run()
        taskset.waitUntilExit()
    }
    let server = try ServerProcess(executable: options.server, port: options.port, pinnedTo: options.pin && cores > 1 ? cores - 1 : nil, environment: [
        "SECRET_KEY": String(repeating: "b", count: 64), "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "error",
        "BCRYPT_COST": "4", "ANTHROPIC_API_KEY": emulator.apiKey, "ANTHROPIC_BASE_URL": emulator.baseURL,
        "SSE_KEEPALIVE_INTERVAL": "15", "ANTHROPIC_MAX_TOKENS": "1024",
        // The benchmark measures the streaming path; 20 users hold up to 1,000 streams and start
        // as many replies, far past the default limits.
        "RATE_LIMIT_ENABLED": "false", "MAX_STREAMS_PER_USER": "100000",
    ])
    let client = LoadClient(http: http, baseURL: server.baseURL)
    defer { server.stop() }
    try await server.start(client: http)

    let users = try await forEach(Array(0..<20), width: 10) { number in
        try await client.register("bench-\(number)-\(UUID().uuidString.prefix(6))@example.com")
    }
    // warm up: one reply end to end
    let warmChat = try await client.createChat(token: users[0])
    let warm = try await client.openStream(chat: warmChat, token: users[0], recorder: nil)
    try await client.send("warm up", chat: warmChat, token: users[0])
    while warm.finishedAt == nil { try await Task.sleep(for: .milliseconds(20)) }
    warm.close()
    try await Task.sleep(for: .milliseconds(500))
    let restRSS = server.residentBytes

    print("# chat-bench: \(options.tokens) deltas per reply, \(options.tokenDelay) ms apart; \(cores) cores"
        + (options.pin && cores > 1 ? "; server pinned to core \(cores - 1), load generator to the others" : ""))
    print("server at rest: \(megabytes(restRSS))\n")
    print("| concurrent replies | relay overhead p50 | p99 | max | without the server p50 | p99 | added p50 | added p99 | server relay p50 | p99 | ≤ 2 ms | replies/s | server CPU per delta | server RSS, streams open | peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    for count in options.streams {
        // baseline: the same replies, emulator straight to this client
        let baseline = LatencyRecorder(capacity: count * options.tokens)
        _ = try await forEach(Array(0..<count), width: count) { _ in
            try await LoadClient.direct(emulator: emulator.baseURL, key: emulator.apiKey, http: http, recorder: baseline)
        }
        let direct = baseline.sorted
        try await Task.sleep(for: .milliseconds(500))

        let chats = try await forEach(Array(0..<count), width: 50) { number in
            (chat: try await client.createChat(token: users[number % users.count]), token: users[number % users.count])
        }
        let recorder = LatencyRecorder(capacity: count * options.tokens)
        let streams = try await forEach(chats, width: 100) { chat in
            try await client.openStream(chat: chat.chat, token: chat.token, recorder: recorder)
        }
        try await Task.sleep(for: .milliseconds(300))
        let openRSS = server.residentBytes

        let relayBefore = try await RelayHistogram.fetch(client)
        let peak = PeakSampler(server: server)
        let cpuBefore = server.cpuSeconds
        let started = Date()
        _ = try await forEach(chats, width: 200) { chat in
            try await client.send("How fast is this?", chat: chat.chat, token: chat.token)
        }
        let deadline = Date().addingTimeInterval(120)
        while streams.contains(where: { $0.finishedAt == nil }), Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let peakRSS = peak.stop()
        let relay = try await RelayHistogram.fetch(client).since(relayBefore)
        let cpuPerDelta = (server.cpuSeconds - cpuBefore) / Double(max(1, count * options.tokens)) * 1e6
        let finished = streams.compactMap(\.finishedAt)
        let elapsed = (finished.max() ?? Date()).timeIntervalSince(started)
        streams.forEach { $0.close() }
        let latencies = recorder.sorted
        let incomplete = count - finished.count
        print(String(format: "| %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | ≤ %@ | ≤ %@ | %.1f%% | %.0f | %.1f µs | %@ | %@ |%@", count,
                     latencies.percentile(0.5), latencies.percentile(0.99), latencies.percentile(1.0),
                     direct.percentile(0.5), direct.percentile(0.99),
                     latencies.percentile(0.5) - direct.percentile(0.5), latencies.percentile(0.99) - direct.percentile(0.99),
                     milliseconds(relay.quantileBound(0.5)), milliseconds(relay.quantileBound(0.99)), relay.share(atMost: 0.002) * 100,
                     Double(finished.count) / elapsed, cpuPerDelta, megabytes(openRSS), megabytes(peakRSS),
                     incomplete > 0 ? " \(incomplete) replies unfinished" : ""))
        try await Task.sleep(for: .seconds(1))
    }

    if options.idle > 0 {
        let chats = try await forEach(Array(0..<100), width: 50) { number in
            (chat: try await client.createChat(token: users[number % users.count]), token: users[number % users.count])
        }
        try await Task.sleep(for: .seconds(1))
        let before = server.residentBytes
        let streams = try await forEach(Array(0..<options.idle), width: 200) { number in
            try await client.openStream(chat: chats[number % chats.count].chat, token: chats[number % chats.count].token, recorder: nil)
        }
        try await Task.sleep(for: .seconds(2))
        let after = server.residentBytes
        print("\nidle streams: \(options.idle) open; server RSS \(megabytes(before)) → \(megabytes(after)): "
            + String(format: "%.1f KB per idle stream", Double(after - before) / Double(options.idle) / 1024))
        streams.forEach { $0.close() }
    }

    try await http.shutdown()
    await emulator.shutdown()
}

/// Samples the server's resident memory every 50 ms; `stop()` answers the highest seen.
final class PeakSampler: @unchecked Sendable {
    // Written by the sampling task only, read after it is cancelled and awaited.
    private var peak = 0
    private var task: Task<Void, Never>?
    private let done = DispatchSemaphore(value: 0)

    init(server: ServerProcess) {
        task = Task.detached { [unowned self] in
            while !Task.isCancelled {
                self.peak = max(self.peak, server.residentBytes)
                try? await Task.sleep(for: .milliseconds(50))
            }
            self.done.signal()
        }
    }

    func stop() -> Int {
        task?.cancel()
        done.wait()
        return peak
    }
}

do {
    try await run()
} catch {
    FileHandle.standardError.write(Data("chat-bench: \(error)\n".utf8))
    exit(1)
}
