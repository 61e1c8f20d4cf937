import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix

/// chat-bench: measures what the server adds to a streamed reply, what it costs in CPU per relayed
/// delta, and what an open stream costs in memory.
///
///     swift build -c release && .build/release/chat-bench [--streams 100,1000] [--timing spread,locked]
///         [--tokens 40] [--token-delay-ms 20] [--idle 10000] [--pin]
///         [--postgres postgres://…] [--instances 2] [--ceiling 200]
///         [--server .build/release/chat-server] [--port 8321] [--otel]
///     .build/release/chat-bench --v1 100,500 --tokens 20 [--v1-seconds 10] [--pin] [--postgres …]
///
/// It runs a token source in this process (``TokenSource``: the Messages API's stream, each reply
/// `--tokens` deltas, each stamped with the time it was sent) and starts the server as a separate
/// process pointed at it. For each N it opens N streams on N chats (``StampReader``: plain
/// sockets, scanned on the event loop), sends N messages at once and reads every delta: relay
/// latency is when this client read a delta minus when the source sent it. Timings:
/// `spread`, each reply's deltas `--token-delay-ms` apart, replies out of step with each other (N
/// replies send N deltas evenly over each interval); `locked`, every reply's deltas on one shared
/// beat, so N deltas reach the server at the same instant.
///
/// CPU is the kernel's accounting (`/proc/<pid>/stat`, user + system) over the run, divided by the
/// deltas relayed: the server's, PostgreSQL's (every `postgres` process) and this process's own
/// (the token source and the clients). The same load read straight from the token source, without
/// the server, says what the load generator costs by itself.
///
/// `--postgres URL` runs the server on PostgreSQL (a schema of its own, dropped at the end; needs
/// `psql`). `--instances 2` starts two servers on it: replies run on A, streams read on B, so every
/// delta crosses instances through the database. `--ceiling N` then sends N replies whose deltas
/// come without pause, to find how many deltas per second the whole path carries.
/// Finally `--idle` streams stay open and idle: the server's growth in resident memory per stream.
///
/// `--otel` runs the servers with tracing on (`OTEL_EXPORTER_OTLP_ENDPOINT`), their spans posted
/// to a sink in the token source that answers as a collector does and counts what it got: the same
/// run without it is tracing off, which installs nothing.
struct Options {
    enum Timing: String { case spread, locked }

    var streams = [100, 1000]
    var timings: [Timing] = [.spread, .locked]
    var idle = 10_000
    var tokens = 40
    var tokenDelay = 20
    var server = ".build/release/chat-server"
    var port = 8321
    /// Run the servers on the last core and this process on the others, so they do not compete.
    var pin = false
    var postgres: String?
    var instances = 1
    var ceiling = 0
    /// `--v1 100,500`: only the `/v1/chat/completions` benchmark, at these rates (``V1Bench``).
    var v1: [Int] = []
    var v1Seconds = 10
    /// `--otel`: servers export traces to the token source's OTLP sink.
    var otel = false

    init(_ arguments: [String]) throws {
        var rest = arguments.dropFirst()
        while let flag = rest.popFirst() {
            if flag == "--pin" || flag == "--otel" {
                if flag == "--pin" { pin = true } else { otel = true }
                continue
            }
            guard let value = rest.popFirst() else { throw BenchError("\(flag) needs a value") }
            switch flag {
            case "--streams": streams = value.split(separator: ",").compactMap { Int($0) }
            case "--timing": timings = try value.split(separator: ",").map { name in
                    guard let timing = Timing(rawValue: String(name)) else { throw BenchError("--timing: spread or locked, not \(name)") }
                    return timing
                }
            case "--idle": idle = Int(value) ?? idle
            case "--tokens": tokens = Int(value) ?? tokens
            case "--token-delay-ms": tokenDelay = Int(value) ?? tokenDelay
            case "--server": server = value
            case "--port": port = Int(value) ?? port
            case "--postgres": postgres = value
            case "--instances": instances = Int(value) ?? instances
            case "--ceiling": ceiling = Int(value) ?? ceiling
            case "--v1": v1 = value.split(separator: ",").compactMap { Int($0) }
            case "--v1-seconds": v1Seconds = Int(value) ?? v1Seconds
            default: throw BenchError("unknown option \(flag)")
            }
        }
        guard instances == 1 || (instances == 2 && postgres != nil) else {
            throw BenchError("--instances 2 needs --postgres (instances share the database)")
        }
    }
}

/// Prints a line at once (not buffered: a run cut short keeps what it measured).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1_048_576) }
func microseconds(_ seconds: Double, per count: Int) -> String { String(format: "%.1f µs", seconds / Double(max(1, count)) * 1e6) }

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

/// The CPU every party has used so far, to subtract one reading from another.
struct CPUReading {
    var servers: [Double]
    var database: Double
    var bench: Double

    init(_ servers: [ServerProcess], database: Bool) {
        self.servers = servers.map(\.cpuSeconds)
        self.database = database ? ProcessCPU.seconds(ofEvery: "postgres") : 0
        bench = ProcessCPU.seconds(of: "self") ?? 0
    }

    static func - (after: CPUReading, before: CPUReading) -> CPUReading {
        var difference = after
        difference.servers = zip(after.servers, before.servers).map { $0 - $1 }
        difference.database -= before.database
        difference.bench -= before.bench
        return difference
    }
}

/// One or two servers: `runner` runs the replies, `reader` holds the streams (the same one alone).
struct Deployment {
    let servers: [ServerProcess]
    let runner: LoadClient
    let reader: LoadClient
    let schema: String?
    let postgres: String?

    static func start(_ options: Options, source: TokenSource, http: HTTPClient) async throws -> Deployment {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var environment = [
            "SECRET_KEY": String(repeating: "b", count: 64), "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "error",
            "BCRYPT_COST": "4", "ANTHROPIC_API_KEY": TokenSource.apiKey, "ANTHROPIC_BASE_URL": source.baseURL,
            "SSE_KEEPALIVE_INTERVAL": "15", "ANTHROPIC_MAX_TOKENS": "1024", "ANTHROPIC_MODELS": "claude-sonnet-5-5",
            // The benchmark measures the streaming path; 20 users hold up to 1,000 streams and start
            // as many replies, far past the default limits.
            "RATE_LIMIT_ENABLED": "false", "MAX_STREAMS_PER_USER": "100000",
        ]
        if options.otel { environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = source.baseURL }
        // NIO's own variables (NIO_SINGLETON_GROUP_LOOP_COUNT, …) reach the server, to compare.
        for (key, value) in ProcessInfo.processInfo.environment where key.hasPrefix("NIO_") { environment[key] = value }
        var schema: String?
        if let postgres = options.postgres {
            let name = "chat_bench_\(ProcessInfo.processInfo.processIdentifier)"
            try psql(postgres, "CREATE SCHEMA \(name)")
            schema = name
            environment["DATABASE_URL"] = postgres
            environment["DATABASE_SCHEMA"] = name
            environment["DATABASE_POOL_SIZE"] = "8"
        }
        var servers: [ServerProcess] = []
        for number in 0..<options.instances {
            var own = environment
            if number > 0 { own["AUTO_MIGRATE"] = "false" }
            let server = try ServerProcess(executable: options.server, port: options.port + number,
                                           pinnedTo: options.pin && cores > 1 ? cores - 1 : nil, environment: own)
            try await server.start(client: http)
            servers.append(server)
        }
        return Deployment(servers: servers, runner: LoadClient(http: http, port: options.port),
                          reader: LoadClient(http: http, port: options.port + servers.count - 1),
                          schema: schema, postgres: options.postgres)
    }

    func stop() {
        servers.forEach { $0.stop() }
        if let schema, let postgres { try? psql(postgres, "DROP SCHEMA \(schema) CASCADE") }
    }

    var residentBytes: Int { servers.map(\.residentBytes).reduce(0, +) }
}

/// Runs one statement with `psql`.
func psql(_ url: String, _ statement: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["psql", url, "-qXc", "SET client_min_messages = warning; " + statement]
    process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw BenchError("psql failed: \(statement)") }
}

func run() async throws {
    let options = try Options(CommandLine.arguments)
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)

    let group = MultiThreadedEventLoopGroup.singleton
    func script(_ timing: Options.Timing, delay: Int) -> TokenSource.Script {
        TokenSource.Script(tokens: options.tokens, delay: .milliseconds(Int64(delay)), locked: timing == .locked)
    }
    let source = try await TokenSource.start(group: group, script: script(.spread, delay: options.tokenDelay))

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
    let deployment = try await Deployment.start(options, source: source, http: http)
    defer { deployment.stop() }
    let runner = deployment.runner, reader = deployment.reader
    let onPostgres = options.postgres != nil

    let users = try await forEach(Array(0..<20), width: 10) { number in
        try await runner.register("bench-\(number)-\(UUID().uuidString.prefix(6))@example.com")
    }
    if !options.v1.isEmpty {
        source.set(TokenSource.Script(tokens: options.tokens, delay: .zero, locked: false))
        try await V1Bench.run(rates: options.v1, seconds: options.v1Seconds, tokens: options.tokens, users: users,
                              deployment: deployment, source: source, http: http)
        try await http.shutdown()
        await source.shutdown()
        return
    }
    // warm up: one reply end to end
    let warmChat = try await runner.createChat(token: users[0])
    let warm = try await StampReader.openStream(group: group, port: reader.port, path: "/api/chat/\(warmChat)/messages/", token: users[0], recorder: nil)
    try await runner.send("warm up", chat: warmChat, token: users[0])
    while warm.finishedAt == nil { try await Task.sleep(for: .milliseconds(20)) }
    warm.close()
    try await Task.sleep(for: .milliseconds(500))
    let restRSS = deployment.residentBytes

    let where_ = options.instances == 2 ? "two instances on PostgreSQL (replies on A, streams on B)" : (onPostgres ? "PostgreSQL" : "SQLite")
    say("# chat-bench: \(where_); \(options.tokens) deltas per reply, \(options.tokenDelay) ms apart; \(cores) cores"
        + (options.pin && cores > 1 ? "; servers pinned to core \(cores - 1), load generator to the others" : "")
        + (options.otel ? "; tracing on (OTLP/HTTP to the token source's sink)" : "; tracing off"))
    say("server\(options.instances == 2 ? "s" : "") at rest: \(megabytes(restRSS))\n")
    let serverColumn = options.instances == 2 ? "server CPU per delta (A + B)" : "server CPU per delta"
    say("| timing | replies | relay p50 | p99 | max | added p50 | added p99 | server's relay histogram p99 | \(serverColumn) | PostgreSQL CPU per delta | load generator CPU per delta (alone) | replies/s | server RSS, streams open | peak RSS |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    for timing in options.timings {
        source.set(script(timing, delay: options.tokenDelay))
        for count in options.streams {
            // baseline: the same replies, token source straight to this client
            let baseline = LatencyRecorder(capacity: count * options.tokens)
            let benchAloneBefore = ProcessCPU.seconds(of: "self") ?? 0
            let direct = try await forEach(Array(0..<count), width: count) { _ in
                try await StampReader.direct(group: group, port: source.port, recorder: baseline)
            }
            let directDeadline = Date().addingTimeInterval(120)
            while direct.contains(where: { $0.finishedAt == nil }), Date() < directDeadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            direct.forEach { $0.close() }
            let benchAlone = (ProcessCPU.seconds(of: "self") ?? 0) - benchAloneBefore
            let alone = baseline.sorted
            try await Task.sleep(for: .milliseconds(500))

            let result = try await relay(count, options: options, users: users, deployment: deployment, group: group)
            let latencies = result.recorder.sorted
            let deltas = count * options.tokens
            let serverCPU = result.cpu.servers.map { microseconds($0, per: deltas) }.joined(separator: " + ")
            say(String(format: "| %@ | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | ≤ %@ | %@ | %@ | %@ (%@) | %.0f | %@ | %@ |%@",
                         timing.rawValue, count,
                         latencies.percentile(0.5), latencies.percentile(0.99), latencies.percentile(1.0),
                         latencies.percentile(0.5) - alone.percentile(0.5), latencies.percentile(0.99) - alone.percentile(0.99),
                         milliseconds(result.relay.quantileBound(0.99)), serverCPU,
                         onPostgres ? microseconds(result.cpu.database, per: deltas) : "in process",
                         microseconds(result.cpu.bench, per: deltas), microseconds(benchAlone, per: deltas),
                         Double(result.finished) / result.elapsed, megabytes(result.openRSS), megabytes(result.peakRSS),
                         result.finished < count ? " \(count - result.finished) replies unfinished" : ""))
            try await Task.sleep(for: .seconds(1))
        }
    }

    if options.ceiling > 0 {
        source.set(script(.spread, delay: 0))
        let result = try await relay(options.ceiling, options: options, users: users, deployment: deployment, group: group)
        let deltas = options.ceiling * options.tokens
        let perDatabaseDelta = result.cpu.database / Double(deltas)
        say(String(format: "\nceiling: %d replies × %d deltas sent without pause: %.0f deltas/s reached the streams (%.2f s); "
                + "server CPU per delta %@; PostgreSQL %@ per delta%@", options.ceiling, options.tokens, Double(deltas) / result.elapsed,
                     result.elapsed, result.cpu.servers.map { microseconds($0, per: deltas) }.joined(separator: " + "),
                     onPostgres ? microseconds(result.cpu.database, per: deltas) : "—",
                     onPostgres && perDatabaseDelta > 0 ? String(format: " (one PostgreSQL core: %.0f deltas/s)", 1 / perDatabaseDelta) : ""))
    }

    if options.idle > 0 {
        let chats = try await forEach(Array(0..<100), width: 50) { number in
            (chat: try await runner.createChat(token: users[number % users.count]), token: users[number % users.count])
        }
        try await Task.sleep(for: .seconds(1))
        let holder = deployment.servers[deployment.servers.count - 1]
        let before = holder.residentBytes
        let streams = try await forEach(Array(0..<options.idle), width: 200) { number in
            try await StampReader.openStream(group: group, port: reader.port, path: "/api/chat/\(chats[number % chats.count].chat)/messages/",
                                             token: chats[number % chats.count].token, recorder: nil)
        }
        try await Task.sleep(for: .seconds(2))
        let after = holder.residentBytes
        say("\nidle streams: \(options.idle) open; server RSS \(megabytes(before)) → \(megabytes(after)): "
            + String(format: "%.1f KB per idle stream", Double(after - before) / Double(options.idle) / 1024))
        streams.forEach { $0.close() }
    }
    if options.otel {
        // Spans wait up to 5 s (OTEL_BSP_SCHEDULE_DELAY's default) to be sent together.
        try await Task.sleep(for: .seconds(6))
        let traces = source.traces.withLockedValue { $0 }
        say("\ntraces: \(traces.posts) OTLP posts, \(megabytes(traces.bytes)) of spans received by the sink")
    }

    try await http.shutdown()
    await source.shutdown()
}

struct RelayRun {
    var recorder: LatencyRecorder
    var relay: RelayHistogram
    var cpu: CPUReading
    var finished: Int
    var elapsed: Double
    var openRSS: Int
    var peakRSS: Int
}

/// `count` replies at once, each with one stream reading it on the reader instance.
func relay(_ count: Int, options: Options, users: [String], deployment: Deployment, group: any EventLoopGroup) async throws -> RelayRun {
    let runner = deployment.runner, reader = deployment.reader
    let chats = try await forEach(Array(0..<count), width: 50) { number in
        (chat: try await runner.createChat(token: users[number % users.count]), token: users[number % users.count])
    }
    let recorder = LatencyRecorder(capacity: count * options.tokens)
    let streams = try await forEach(chats, width: 100) { chat in
        try await StampReader.openStream(group: group, port: reader.port, path: "/api/chat/\(chat.chat)/messages/", token: chat.token, recorder: recorder)
    }
    try await Task.sleep(for: .milliseconds(300))
    let openRSS = deployment.residentBytes

    let relayBefore = try await RelayHistogram.fetch(reader)
    let peak = PeakSampler(deployment)
    let cpuBefore = CPUReading(deployment.servers, database: options.postgres != nil)
    let started = Date()
    _ = try await forEach(chats, width: 200) { chat in
        try await runner.send("How fast is this?", chat: chat.chat, token: chat.token)
    }
    let deadline = Date().addingTimeInterval(120)
    while streams.contains(where: { $0.finishedAt == nil }), Date() < deadline {
        try await Task.sleep(for: .milliseconds(20))
    }
    let cpu = CPUReading(deployment.servers, database: options.postgres != nil) - cpuBefore
    let peakRSS = peak.stop()
    let relay = try await RelayHistogram.fetch(reader).since(relayBefore)
    let finished = streams.compactMap(\.finishedAt)
    let elapsed = (finished.max() ?? Date()).timeIntervalSince(started)
    streams.forEach { $0.close() }
    return RelayRun(recorder: recorder, relay: relay, cpu: cpu, finished: finished.count, elapsed: elapsed, openRSS: openRSS, peakRSS: peakRSS)
}

/// Samples the servers' resident memory every 50 ms; `stop()` answers the highest seen.
final class PeakSampler: @unchecked Sendable {
    // Written by the sampling task only, read after it is cancelled and awaited.
    private var peak = 0
    private var task: Task<Void, Never>?
    private let done = DispatchSemaphore(value: 0)

    init(_ deployment: Deployment) {
        task = Task.detached { [unowned self] in
            while !Task.isCancelled {
                self.peak = max(self.peak, deployment.residentBytes)
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
