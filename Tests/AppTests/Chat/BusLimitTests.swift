@testable import App
import Fluent
import FluentPostgresDriver
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import PostgresNIO
import SQLKit
import Testing
import VaporTesting

/// The event bus never stalls on one notification: what cannot travel is sent as a pointer, dropped
/// with a log line and a count, or — when its queue overflowed — replaced by a word to every other
/// instance to catch up; nothing is retried forever.
@Suite("Event bus limits", .serialized, .enabled(if: TestDatabase.postgresURL != nil))
struct BusLimitTests {
    @Test("a title too long for a notification reaches the other instance read from the database, and the bus goes on")
    func oversizedTitle() async throws {
        try await withTwoInstances { a, b, _ in
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access, title: "Short")
            let busA = try a.services.chat.bus
            try await b.withLiveServer { baseB in
                let stream = try await EventStreamClient.open(baseB, "/api/chat/\(chat.id)/messages/", token: session.access)
                // No request can give a title this long any more; the bus must carry one all the same.
                let huge = String(repeating: "ä", count: 6_000)
                let id = try #require(UUID(uuidString: chat.id))
                try await a.db.sql().update(Chat.schema).set("title", to: SQLBind(huge)).where("id", .equal, SQLBind(id)).run()
                busA.chatRenamed(id, title: huge)
                try await stream.waitFor("the long title") { events in
                    events.contains { $0.type == "chat" && $0.json["title"] as? String == huge }
                }
                // And what follows still gets through.
                let plain = try await a.send(.PATCH, "/api/chat/\(chat.id)/", json: ["title": "After"], token: session.access)
                #expect(plain.status == .ok)
                try await stream.waitFor("the next title") { events in
                    events.contains { $0.type == "chat" && $0.json["title"] as? String == "After" }
                }
                stream.close()
            }
            #expect(BusNotification.chatRenamed(chat: UUID(), title: String(repeating: "x", count: 8_000)).fitting()
                    .payload(from: "i").utf8.count < 100)
        }
    }

    @Test("a notification the database refuses is dropped and counted; the ones after it go out")
    func refusedNotification() async throws {
        try await withTwoInstances { a, b, _ in
            let session = try await a.register()
            let chat = try await a.createChat(token: session.access, title: "Before")
            let notifier = try #require(try a.transport?.notifier)
            try await b.withLiveServer { baseB in
                let stream = try await EventStreamClient.open(baseB, "/api/chat/\(chat.id)/messages/", token: session.access)
                // An empty channel name is an error of the statement, not of the connection.
                notifier.notify("", .resync)
                let renamed = try await a.send(.PATCH, "/api/chat/\(chat.id)/", json: ["title": "After"], token: session.access)
                #expect(renamed.status == .ok)
                try await stream.waitFor("the title sent after the refused one") { events in
                    events.contains { $0.type == "chat" && $0.json["title"] as? String == "After" }
                }
                stream.close()
            }
            let last = NIOLockedValueBox("")
            do {
                try await waitUntil("the drop to be counted") {
                    let metrics = String(buffer: try await a.send(.GET, "/metrics", from: "127.0.0.1").body)
                    last.withLockedValue { $0 = metrics }
                    return metrics.contains(#"chat_bus_notifications_dropped_total{reason="refused"} 1"#)
                }
            } catch {
                Issue.record("metrics: \(last.withLockedValue { $0 }.split(separator: "\n").filter { $0.contains("bus") })")
                throw error
            }
        }
    }

    @Test("a full queue drops its oldest notifications and, once sending works again, tells every instance to catch up")
    func overflowAsksOthersToCatchUp() async throws {
        let proxy = try await proxyToDatabase()
        let channel = Self.newChannel()
        let drops = NIOLockedValueBox<[String]>([])
        let received = NIOLockedValueBox<[String]>([])
        let sender = try notifier("sender", channel: channel, through: proxy, maxQueue: 5, drops: drops)
        let listener = try notifier("listener", channel: channel, received: received)
        await listener.start(listeningTo: [channel])
        await sender.start(listeningTo: [])
        let chat = UUID()
        sender.notify(channel, BusNotification.following(chat: chat))
        try await waitUntil("the first notification") { received.withLockedValue { $0.count } == 1 }
        try await waitUntil("the sender to be done with it") { sender.queuedCount == 0 }

        // The database goes away: what is sent meanwhile queues, up to five, the oldest dropped.
        await proxy.drop(refuse: true)
        // (Distinct: PostgreSQL delivers identical notifications of one transaction once.)
        // The sender takes the first and keeps trying it; the rest wait (had it taken a batch of
        // five at once, a sixth would have had to wait beside them: a count that hung on timing).
        sender.notify(channel, BusNotification.unfollowed(chat: UUID()))
        try await waitUntil("the sender to take it") { sender.inFlightCount == 1 }
        for _ in 1..<12 { sender.notify(channel, BusNotification.unfollowed(chat: UUID())) }
        try await waitUntil("drops") { drops.withLockedValue { $0.count } >= 7 }
        #expect(drops.withLockedValue { $0 }.allSatisfy { $0 == "queue_full" })
        proxy.restore()
        do {
            try await waitUntil("the queue to drain", timeout: .seconds(20)) { received.withLockedValue { $0.count } >= 7 }
        } catch {
            Issue.record("received \(received.withLockedValue { $0 }), drops \(drops.withLockedValue { $0 })")
            throw error
        }
        let payloads = received.withLockedValue { $0 }
        #expect(payloads.filter { $0 == BusNotification.resync.payload(from: "sender") }.count == 1, "\(payloads)")
        #expect(payloads.filter { $0.hasPrefix("u|") }.count == 5, "the five kept go out, once: \(payloads)")
        #expect(drops.withLockedValue { $0.count } == 7)
        #expect(BusNotification.parse(BusNotification.resync.payload(from: "sender"))?.notification == .resync)
        await sender.shutdown()
        await listener.shutdown()
        await proxy.shutdown()
    }

    /// A notifier of `channel` for these tests, through `proxy` when given.
    private func notifier(_ name: String, channel: String, through proxy: TCPProxy? = nil, timing: PostgresNotifier.Timing = .init(),
                          maxQueue: Int = PostgresNotifier.defaultMaxQueue, received: NIOLockedValueBox<[String]>? = nil,
                          reconnects: NIOLockedValueBox<Int>? = nil, drops: NIOLockedValueBox<[String]>? = nil) throws -> PostgresNotifier {
        let url = try #require(TestDatabase.postgresURL)
        var components = try #require(URLComponents(string: url))
        if let proxy { components.port = proxy.port }
        let address = try #require(components.string)
        return PostgresNotifier(
            configuration: try SQLPostgresConfiguration(url: address).coreConfiguration,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, instance: name, logger: Logger(label: "test"), controlChannel: channel,
            handler: { _, payload in received?.withLockedValue { $0.append(payload) } },
            onReconnect: { reconnects?.withLockedValue { $0 += 1 } }, onDrop: { reason in drops?.withLockedValue { $0.append(reason) } },
            maxQueue: maxQueue, timing: timing
        )
    }

    private func proxyToDatabase() async throws -> TCPProxy {
        let url = try #require(TestDatabase.postgresURL)
        let components = try #require(URLComponents(string: url))
        return try await TCPProxy.start(to: components.host ?? "127.0.0.1", port: components.port ?? 5432)
    }

    private static func newChannel() -> String {
        "test_bus_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
    }

    @Test("a sending connection the network cut without a word is given up after its limit, and the batch goes again on a new one")
    func stalledSender() async throws {
        let proxy = try await proxyToDatabase()
        let channel = Self.newChannel()
        let received = NIOLockedValueBox<[String]>([])
        let sender = try notifier("sender", channel: channel, through: proxy, timing: .init(answerWithin: .seconds(2), probeEvery: .seconds(3600)))
        let listener = try notifier("listener", channel: channel, received: received)
        await listener.start(listeningTo: [channel])
        await sender.start(listeningTo: [])
        sender.notify(channel, BusNotification.following(chat: UUID()))
        try await waitUntil("the first notification") { received.withLockedValue { $0.count } == 1 }

        // The packets stop; nothing closes: the statement would wait for an answer for good.
        proxy.stall()
        let chat = UUID()
        sender.notify(channel, BusNotification.unfollowed(chat: chat))
        let expected = BusNotification.unfollowed(chat: chat).payload(from: "sender")
        try await waitUntil("the notification sent on the stalled connection", timeout: .seconds(30)) {
            received.withLockedValue { $0.contains(expected) }
        }
        // (The answer reaches the sender after the notification reached the listener.)
        try await waitUntil("the sender to be done with it") { sender.queuedCount == 0 }
        await sender.shutdown()
        await listener.shutdown()
        await proxy.shutdown()
    }

    @Test("a listening connection the network cut without a word is found by its probe: the listener connects again, says so, and hears what comes next")
    func stalledListener() async throws {
        let proxy = try await proxyToDatabase()
        let channel = Self.newChannel()
        let received = NIOLockedValueBox<[String]>([])
        let reconnects = NIOLockedValueBox(0)
        let listener = try notifier("listener", channel: channel, through: proxy,
                                    timing: .init(answerWithin: .seconds(2), probeEvery: .milliseconds(200)), received: received, reconnects: reconnects)
        let sender = try notifier("sender", channel: channel)
        await listener.start(listeningTo: [channel])
        await sender.start(listeningTo: [])
        sender.notify(channel, BusNotification.following(chat: UUID()))
        try await waitUntil("the first notification") { received.withLockedValue { $0.count } == 1 }

        let before = reconnects.withLockedValue { $0 }
        proxy.stall()
        try await waitUntil("the listener to connect again", timeout: .seconds(30)) { reconnects.withLockedValue { $0 } > before }
        let chat = UUID()
        sender.notify(channel, BusNotification.unfollowed(chat: chat))
        let expected = BusNotification.unfollowed(chat: chat).payload(from: "sender")
        try await waitUntil("the next notification", timeout: .seconds(30)) { received.withLockedValue { $0.contains(expected) } }
        await sender.shutdown()
        await listener.shutdown()
        await proxy.shutdown()
    }
}
