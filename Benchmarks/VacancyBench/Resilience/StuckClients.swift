import AsyncHTTPClient
import Foundation
import Logging
import PostgresNIO
import Shared
import TestSupport

/// Scenario "slow and stuck clients": while bookings keep events flowing, 100 subscribers
/// stop reading, and others open streams and vanish (a TCP reset, or a close before reading
/// anything). The fan-out must cut the stuck ones, forget the vanished ones, keep its
/// memory bounded, and keep delivering every event to healthy subscribers in time.
struct StuckClients {
    let stack: Stack
    let client: HTTPClient
    let stuck: Int
    let vanishing: Int
    let healthy: Int
    let phase: Duration

    func run() async throws -> ScenarioResult {
        // A fresh fan-out, so its peak memory is this scenario's.
        stack.fanout.stop()
        try stack.fanout.start()
        try await stack.fanout.waitReady(client: client)

        let api = RouterAPI(baseURL: stack.routerURL, client: client)
        let sessionIDs = try await api.createSessions(50, from: 200, capacity: 10_000)
        let startHead = try await StackDatabase.head(stack.databaseURL)
        let fanoutEvents = "/events?topic=availability"
        let watchers = (0..<healthy).map { _ in EventWatcher() }
        for watcher in watchers {
            watcher.start(url: "http://127.0.0.1:\(stack.fanout.port)" + fanoutEvents, client: client, from: startHead)
        }
        defer { for watcher in watchers { watcher.stop() } }
        try await waitUntil(within: .seconds(20), "healthy subscribers connected") { watchers.allSatisfy { $0.connects > 0 } }
        let before = stack.fanout.memoryKiB().resident
        let slowName = "vacancy_fanout_slow_consumer_disconnects_total"
        let slowBefore = try await Self.metric(slowName, client: client, port: stack.fanout.port)

        let gang = BookingGang(api: api, sessionIDs: sessionIDs, clients: 20)
        var stuckSockets: [RawSocket] = []
        var vanished = 0
        var baselineWindow = Date()...Date()
        var troubleWindow = Date()...Date()
        var peakKiB = 0
        let outcome = try await withThrowingTaskGroup(of: BookingGang.Outcome?.self) { group in
            group.addTask { await gang.run() }
            defer { gang.stop() }
            let baselineStart = Date()
            try await Task.sleep(for: phase)
            baselineWindow = baselineStart...Date()
            say("resilience: stuck: baseline \(phase) with \(healthy) healthy subscribers; now \(stuck) stuck and \(vanishing) vanishing")

            let troubleStart = Date()
            for _ in 0..<stuck {
                let socket = try RawSocket(port: stack.fanout.port, receiveBuffer: 4096)
                try socket.sendGET(fanoutEvents)
                stuckSockets.append(socket)
            }
            // The trouble phase lasts `phase`, and events keep coming until every stuck stream
            // is cut off (the fan-out cuts when its buffer for that stream is full), or 60 s more.
            let troubleEnd = ContinuousClock.now + phase
            while ContinuousClock.now < troubleEnd
                || (ContinuousClock.now < troubleEnd + .seconds(60) && stuckSockets.contains { !$0.peerClosed })
            {
                // Vanishing clients, spread over the phase: half reset after the head, half close before reading.
                if vanished < vanishing {
                    let socket = try RawSocket(port: stack.fanout.port)
                    try socket.sendGET(fanoutEvents)
                    if vanished % 2 == 0 {
                        _ = socket.readStatus()
                        socket.reset()
                    } else {
                        socket.close()
                    }
                    vanished += 1
                }
                peakKiB = max(peakKiB, stack.fanout.memoryKiB().resident)
                try await Task.sleep(for: .milliseconds(vanished < vanishing ? 20 : 250))
            }
            troubleWindow = troubleStart...Date()
            gang.stop()
            var merged: BookingGang.Outcome?
            for try await result in group where result != nil { merged = result }
            return merged ?? BookingGang.Outcome()
        }
        peakKiB = max(peakKiB, stack.fanout.memoryKiB().peak)

        let expected = try await StackDatabase.availabilityIDs(stack.databaseURL, after: startHead)
        try? await waitUntil(within: .seconds(30), "healthy subscribers caught up") {
            watchers.allSatisfy { ($0.lastID ?? 0) >= (expected.last ?? startHead) }
        }
        let cut = stuckSockets.filter(\.peerClosed).count
        let slowCut = try await Self.metric(slowName, client: client, port: stack.fanout.port) - slowBefore
        // Streams that vanished are noticed at the next write or ping: give them a moment.
        var open = try await Self.openSubscribers(client: client, port: stack.fanout.port)
        let settleDeadline = ContinuousClock.now + .seconds(20)
        while open != healthy && ContinuousClock.now < settleDeadline {
            try await Task.sleep(for: .milliseconds(500))
            open = try await Self.openSubscribers(client: client, port: stack.fanout.port)
        }
        // Counted while the stuck clients still hold their sockets: the fan-out let go by itself.
        for socket in stuckSockets { socket.close() }
        for watcher in watchers { watcher.stop() }

        let deliveries = watchers.map { $0.verify(expected: expected) }.reduce(EventWatcher.Delivery(), +)
        let createdAt = try await Self.createdAt(stack.databaseURL, after: startHead)
        let baseline = Self.latency(watchers, createdAt: createdAt, in: baselineWindow)
        let trouble = Self.latency(watchers, createdAt: createdAt, in: troubleWindow)
        let growthMiB = Double(peakKiB - before) / 1024
        let check = try await InvariantCheck.check(databaseURL: stack.databaseURL, outcome: outcome)

        let passed =
            cut == stuck && slowCut >= stuck && deliveries.exact && open == healthy && growthMiB < 256 && trouble.p99 < 1000 && check.holds
            && outcome.serverErrors == 0
        let line =
            "stuck clients: \(stuck) stuck, cut off \(slowCut) by the fan-out's count and \(cut) as the clients saw it; \(vanished) vanished, streams still open at the end \(open) (healthy \(healthy)); "
            + "fan-out RSS \(before / 1024) MiB before, peak \(peakKiB / 1024) MiB (+\(Int(growthMiB)) MiB); "
            + "healthy log → subscriber p50/p99 \(baseline.p50)/\(baseline.p99) ms before, \(trouble.p50)/\(trouble.p99) ms with stuck clients; "
            + "\(expected.count) events, delivered \(deliveries.delivered), missing \(deliveries.missing), duplicated \(deliveries.duplicated), "
            + "out of order \(deliveries.outOfOrder), unexpected \(deliveries.unexpected); "
            + "\(outcome.requests) booking requests (\(outcome.statusSummary)); \(check.summary)"
        return ScenarioResult(
            name: "Slow and stuck clients",
            load: "\(healthy) healthy subscribers, 20 booking clients (\(outcome.requests) requests)",
            faults: "\(stuck) subscribers that stop reading, \(vanished) that vanish (reset or close before reading)",
            eventsChecked: deliveries.delivered, lost: deliveries.missing, duplicated: deliveries.duplicated,
            overCapacity: check.overCapacity, passed: passed, line: line)
    }

    /// `vacancy_fanout_subscribers` summed over transports, from the fan-out's `/metrics`.
    static func openSubscribers(client: HTTPClient, port: Int) async throws -> Int {
        try await metric("vacancy_fanout_subscribers", client: client, port: port)
    }

    /// A metric's samples (every label set) summed, from a service's `/metrics`.
    static func metric(_ name: String, client: HTTPClient, port: Int) async throws -> Int {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics")
        request.headers.add(name: "Connection", value: "close")
        let response = try await client.execute(request, timeout: .seconds(5))
        return Int(PrometheusText(String(buffer: try await response.body.collect(upTo: 1 << 22))).sum(name))
    }

    static func createdAt(_ databaseURL: String, after: Int64) async throws -> [Int64: Date] {
        try await StackDatabase.with(databaseURL) { database in
            var result: [Int64: Date] = [:]
            for row in try await database.rows("SELECT id, created_at FROM events WHERE id > \(after)") {
                let (id, at) = try row.decode((Int64, Date).self)
                result[id] = at
            }
            return result
        }
    }

    /// Log append → arrival at the healthy subscribers, for events that arrived in `window`.
    static func latency(_ watchers: [EventWatcher], createdAt: [Int64: Date], in window: ClosedRange<Date>) -> (p50: Int, p99: Int) {
        var samples: [Double] = []
        for watcher in watchers {
            for event in watcher.events where window.contains(event.wall) {
                if let created = createdAt[event.id] { samples.append(event.wall.timeIntervalSince(created) * 1000) }
            }
        }
        guard !samples.isEmpty else { return (0, 0) }
        samples.sort()
        func at(_ quantile: Double) -> Int { Int(samples[min(samples.count - 1, Int(Double(samples.count) * quantile))].rounded()) }
        return (at(0.5), at(0.99))
    }
}
