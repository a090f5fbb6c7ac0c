import ArgumentParser
import AsyncHTTPClient
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import Shared

/// N subscribers on any SSE URL, events driven at a fixed rate, and what they saw:
/// deliveries per second, event-timestamp → delivery latency, order and completeness, and
/// the server's resident memory per open subscriber.
struct SSELoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sse",
        abstract: "Open N SSE subscribers (HTTP/1.1 or HTTP/2), drive events, report deliveries, latency and memory.")

    @Option(
        help:
            "The SSE URL to subscribe to (https:// for HTTP/2). With --drive vacancy, {session} in it spreads the subscribers over the bench sessions' ids."
    ) var url = "http://127.0.0.1:8083/events?topic=availability"
    @Option(help: "Subscribers to open.") var subscribers = 1000
    @Option(help: "http1 or http2.") var transport = "http1"
    @Option(help: "HTTP/2 streams per connection.") var streamsPerConnection = 100
    @Option(help: "Event-loop threads of the subscribers.") var threads = 1
    @Option(
        help:
            "How HTTP/1.1 streams are read: raw (plain epoll threads, a few µs of CPU per delivery) or nio (SwiftNIO's HTTP client pipeline, about twice that)."
    ) var reader = "raw"
    @Option(help: "How events are driven: vacancy (book seats), publish (POST to --publish-url), none.") var drive = "vacancy"
    @Option(help: "Events driven per second.") var rate = 200
    @Option(help: "Seconds of measured load.") var duration = 20
    @Option(help: "Seconds of load before measuring.") var warmup = 2
    @Option(help: "Bookings service (drive vacancy).") var bookingsURL = "http://127.0.0.1:8081"
    @Option(help: "API key (drive vacancy).") var apiKey = "vacancy-dev-key"
    @Option(help: "Sessions to book on (drive vacancy).") var sessions = 20
    @Option(help: "Publisher endpoint (drive publish), e.g. Nchan's.") var publishURL: String?
    @Option(help: "The JSON field of each event's data holding the time it was caused.") var timestampField = "updated_at"
    @Option(help: "Bytes of each published event's data (drive publish); 420 is a Vacancy availability.updated event's.")
    var publishBytes = 420
    @Option(help: "PID of a server process, for resident memory per subscriber (repeat for several).") var serverPID: [Int32] = []
    @Flag(
        help:
            "After the measured window, drop every connection at once and reopen every subscriber with Last-Event-ID while events keep flowing (HTTP/2)."
    ) var reconnectAll = false
    @Option(help: "Seconds events keep flowing from the drop (with --reconnect-all).") var reconnectSeconds = 20
    @Option(help: "The server's Prometheus metrics, to tell whether resumes read the log table (Vacancy's fan-out).")
    var metricsURL: String?
    @Option(
        help:
            "The Vacancy database (drive vacancy): also measure each delivery from its event's append to the log (events.created_at), the point that matches a publish to another server."
    ) var databaseURL: String?
    @Option(help: "A label for the summary line.") var label = "sse"
    @Option(help: "Write the summary as JSON to this file.") var json: String?

    func run() async throws {
        let target = try SSESubscribers.target(url)
        let pool = SSESubscribers(threads: threads)
        let stats = DeliveryStats(group: pool.group, keepDeliveries: databaseURL != nil)
        guard reader == "raw" || reader == "nio" else { throw ValidationError("--reader is raw or nio") }
        let rawReaders = transport == "http1" && reader == "raw" ? RawHTTP1Readers(threads: threads, stats: stats) : nil
        do {
            let result = try await measure(pool, rawReaders, target: target, stats: stats)
            rawReaders?.close()
            await pool.close()
            print(result.line)
            if let json { try writeJSON(result, to: json) }
        } catch {
            rawReaders?.close()
            await pool.close()
            throw error
        }
    }

    private func measure(
        _ pool: SSESubscribers, _ rawReaders: RawHTTP1Readers?, target: SSESubscribers.Target, stats: DeliveryStats
    ) async throws -> SSEResult {
        let baseline = residentKiB(pids: serverPID)
        let say = { (text: String) in print("vacancy-bench: \(label): \(text)") }
        let opening = ContinuousClock.now
        let step = max(1000, subscribers / 10)
        let progress: (Int) -> Void = { opened in
            if opened % step == 0 || opened == subscribers { say("\(opened)/\(subscribers) subscribers connecting") }
        }
        // The sessions bookings go to, made before any subscriber so {session} can name them.
        let sessionIDs = drive == "vacancy" ? try await createSessions() : []
        var uris: [String] = []
        if target.requestURI.contains("%7Bsession%7D") || target.requestURI.contains("{session}") {
            guard drive == "vacancy" else { throw ValidationError("{session} in --url needs --drive vacancy") }
            uris = sessionIDs.map {
                target.requestURI.replacingOccurrences(of: "%7Bsession%7D", with: $0).replacingOccurrences(of: "{session}", with: $0)
            }
        }
        switch transport {
        case "http1" where rawReaders != nil:
            try rawReaders!.open(target, uris: uris, count: subscribers, timestampField: timestampField, progress: progress)
        case "http1":
            try await pool.openHTTP1(
                target, uris: uris, count: subscribers, stats: stats, timestampField: timestampField, progress: progress)
        case "http2":
            try await pool.openHTTP2(
                target, uris: uris, count: subscribers, streamsPerConnection: streamsPerConnection, stats: stats,
                timestampField: timestampField, progress: progress)
        default:
            throw ValidationError("--transport is http1 or http2")
        }
        let deadline = ContinuousClock.now + .seconds(120)
        while stats.openStreams + stats.failedStreams < subscribers {
            guard ContinuousClock.now < deadline else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let openTime = ContinuousClock.now - opening
        guard stats.openStreams == subscribers else {
            if transport == "http2" {
                let missing = pool.unanswered(streamsPerConnection: streamsPerConnection)
                say("unanswered streams by connection (first subscriber: count): \(missing.sorted { $0.key < $1.key }.prefix(20))")
            }
            throw SSELoadError("only \(stats.openStreams) of \(subscribers) subscribers got a stream (\(stats.failedStreams) refused)")
        }
        try await Task.sleep(for: .seconds(2))
        let loaded = residentKiB(pids: serverPID)
        say("\(subscribers) subscribers open in \(openTime.seconds.formatted(2)) s; driving \(rate) events/s for \(warmup)+\(duration) s")

        try await stats.reset()
        try await driveEvents(seconds: warmup, sessionIDs: sessionIDs)
        stats.setMeasuring(true)
        let measuredStart = ContinuousClock.now
        let cpuBefore = CPUTimes.now()
        let serverTicksBefore = processCPUTicks(pids: serverPID)
        let ownTicksBefore = processCPUTicks(pids: [getpid()])
        let before = try await stats.merged().measuredDeliveries
        try await driveEvents(seconds: duration, sessionIDs: sessionIDs)
        let driven = ContinuousClock.now - measuredStart
        let underLoad = residentKiB(pids: serverPID)
        let cpuAfter = CPUTimes.now()
        let steal = cpuBefore.flatMap { before in cpuAfter?.stealPercent(since: before) }
        let serverTicks = serverTicksBefore.flatMap { before in processCPUTicks(pids: serverPID).map { $0 - before } }
        let ownTicks = ownTicksBefore.flatMap { before in processCPUTicks(pids: [getpid()]).map { $0 - before } }
        let inWindow = try await stats.merged().measuredDeliveries - before
        stats.setMeasuring(false)
        let reconnect = reconnectAll ? try await dropAndResume(pool, target: target, stats: stats, sessionIDs: sessionIDs, say: say) : nil
        // Let the last events arrive (until deliveries stop for a second); their latency counts.
        var settled = try await stats.merged().deliveries
        let tailEnd = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < tailEnd {
            try await Task.sleep(for: .seconds(1))
            let now = try await stats.merged().deliveries
            if now == settled { break }
            settled = now
        }
        let tally = try await stats.merged()
        let latency = LatencyRecorder.Summary(histogram: tally.histogram)
        var logLatency: LatencyRecorder.Summary?
        if let databaseURL { logLatency = try await Self.latencyFromLog(try await stats.takeDeliveries(), databaseURL: databaseURL) }

        // Subscribers are spread evenly over topics (or all on one), so every event should reach
        // as many subscribers as the best-delivered one did.
        let events = tally.perEvent.count
        let expected = tally.perEvent.values.max() ?? 0
        let complete = tally.perEvent.values.filter { $0 >= expected }.count
        var result = SSEResult(
            label: label, transport: transport, subscribers: subscribers, openSeconds: openTime.seconds,
            eventsDriven: events, deliveries: tally.deliveries, missing: max(0, events * expected - tally.deliveries),
            eventsIncomplete: events - complete, outOfOrder: tally.outOfOrder,
            streamsEnded: stats.endedStreams, deliveriesPerSecond: Double(inWindow) / driven.seconds, latency: latency,
            untimedEvents: tally.untimed, serverRSSBeforeKiB: baseline, serverRSSOpenKiB: loaded, kibPerSubscriber: nil,
            cpuStealPercent: steal
        )
        // Clock ticks are 10 ms: CPU seconds per delivery, as microseconds.
        if let serverTicks, inWindow > 0 {
            result.serverCPUPercent = Double(serverTicks) / driven.seconds
            result.serverCPUMicrosPerDelivery = Double(serverTicks) * 10_000 / Double(inWindow)
        }
        if let ownTicks, inWindow > 0 { result.readerCPUMicrosPerDelivery = Double(ownTicks) * 10_000 / Double(inWindow) }
        if let cpuBefore, let cpuAfter, inWindow > 0 {
            result.machineCPUMicrosPerDelivery = Double(cpuAfter.busy - cpuBefore.busy) * 10_000 / Double(inWindow)
        }
        result.reconnect = reconnect
        result.logLatency = logLatency
        if let baseline, let loaded { result.kibPerSubscriber = Double(loaded - baseline) / Double(subscribers) }
        if let baseline, let underLoad {
            result.serverRSSEndKiB = underLoad
            result.kibPerSubscriberUnderLoad = Double(underLoad - baseline) / Double(subscribers)
        }
        return result
    }

    /// Drops every connection at once while events keep flowing, and reopens every subscriber
    /// with `Last-Event-ID`: how long until all are answered again, and (with --metrics-url)
    /// whether any resume read the log table.
    private func dropAndResume(
        _ pool: SSESubscribers, target: SSESubscribers.Target, stats: DeliveryStats, sessionIDs: [String], say: (String) -> Void
    ) async throws -> SSEResult.Reconnect {
        guard transport == "http2" else { throw ValidationError("--reconnect-all is for --transport http2") }
        let readsBefore = try await logReads()
        let seconds = reconnectSeconds
        let driving = Task { try await driveEvents(seconds: seconds, sessionIDs: sessionIDs) }
        try await Task.sleep(for: .seconds(2))
        let answeredBefore = stats.openStreams
        say("dropping all \(subscribers) subscribers at once; reopening each with Last-Event-ID")
        let dropped = ContinuousClock.now
        try await pool.reconnectAllHTTP2(target, streamsPerConnection: streamsPerConnection, stats: stats)
        let deadline = ContinuousClock.now + .seconds(60)
        while stats.openStreams - answeredBefore < subscribers, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let back = ContinuousClock.now - dropped
        let answered = stats.openStreams - answeredBefore
        say("\(answered) of \(subscribers) back in \(back.seconds.formatted(2)) s")
        try await driving.value
        let readsAfter = try await logReads()
        var reads: (resumes: Int, table: Int)?
        if let readsBefore, let readsAfter {
            reads = (readsAfter.resumes - readsBefore.resumes, readsAfter.table - readsBefore.table)
        }
        return SSEResult.Reconnect(subscribers: answered, seconds: back.seconds, resumes: reads?.resumes, tableReads: reads?.table)
    }

    /// Vacancy's fan-out's resumes and log-table reads for resumes so far (nil without --metrics-url).
    private func logReads() async throws -> (resumes: Int, table: Int)? {
        guard let metricsURL else { return nil }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let text: String
        do {
            let response = try await client.execute(HTTPClientRequest(url: metricsURL), timeout: .seconds(10))
            text = String(buffer: try await response.body.collect(upTo: 16 << 20))
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
        func value(_ prefix: String) -> Int {
            text.split(separator: "\n").filter { $0.hasPrefix(prefix) }
                .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0) { $0 + Int($1) }
        }
        return (
            value("vacancy_fanout_resumes_total"),
            value(#"vacancy_fanout_log_reads_total{purpose="history"}"#) + value(#"vacancy_fanout_log_reads_total{purpose="bounds"}"#)
        )
    }

    /// Each delivery's latency from its event's append to the log: the calculator's
    /// transaction stamps `events.created_at` as it begins, before the commit that lets the
    /// fan-out read it, so this counts the append's commit, the read, the write and the
    /// reading, as a publish to another server counts its POST.
    static func latencyFromLog(_ deliveries: [LoopTally.Delivery], databaseURL: String) async throws -> LatencyRecorder.Summary {
        let ids = Array(Set(deliveries.map { Int64($0.id) }))
        let appended = try await StackDatabase.with(databaseURL) { database in
            var appended: [Int: Int64] = [:]
            for row in try await database.rows(
                "SELECT id, (extract(epoch FROM created_at) * 1000000)::bigint FROM events WHERE id = ANY(\(ids))")
            {
                let (id, micros) = try row.decode((Int64, Int64).self)
                appended[Int(id)] = micros
            }
            return appended
        }
        var histogram = LoopTally.emptyHistogram()
        for delivery in deliveries {
            guard let at = appended[delivery.id] else { continue }
            _ = histogram.record(UInt64(max(1, delivery.arrivedMicros - at)))
        }
        return LatencyRecorder.Summary(histogram: histogram)
    }

    private func driveEvents(seconds: Int, sessionIDs: [String]) async throws {
        guard seconds > 0 else { return }
        let recorder = LatencyRecorder()
        switch drive {
        case "vacancy":
            try await BookingsAPI(url: bookingsURL, apiKey: apiKey).book(
                sessionIDs: sessionIDs, rate: rate, seconds: seconds, connections: 8, recorder: recorder)
        case "publish":
            guard let publishURL, let components = URLComponents(string: publishURL) else {
                throw ValidationError("--drive publish needs --publish-url")
            }
            let uri = components.percentEncodedPath + (components.percentEncodedQuery.map { "?" + $0 } ?? "")
            let field = timestampField
            // As many bytes as a Vacancy `availability.updated` event's data, so both servers
            // carry the same bytes per delivery.
            let padding = String(repeating: "x", count: max(0, publishBytes - 60))
            try await offerFixedRate(url: publishURL, rate: rate, seconds: seconds, connections: 4, recorder: recorder) { index, host in
                let stamp = RFC3339.microseconds(from: Date())
                let body = #"{"\#(field)":"\#(stamp)","seq":\#(index),"pad":"\#(padding)"}"#
                var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: uri)
                head.headers.add(name: "Host", value: host)
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: String(body.utf8.count))
                return (head, ByteBuffer(string: body))
            }
        case "none":
            try await Task.sleep(for: .seconds(seconds))
        default:
            throw ValidationError("--drive is vacancy, publish or none")
        }
        let outcomes = recorder.summary().outcomes
        let failures = outcomes.filter { !$0.key.hasPrefix("2") }
        if !failures.isEmpty { throw SSELoadError("driving events failed: \(failures)") }
    }

    private func createSessions() async throws -> [String] {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let ids = try await BookingsAPI(url: bookingsURL, apiKey: apiKey).createSessions(client, count: sessions)
            try await client.shutdown()
            return ids
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

struct SSEResult: Codable {
    var label: String
    var transport: String
    var subscribers: Int
    var openSeconds: Double
    var eventsDriven: Int
    var deliveries: Int
    var missing: Int
    var eventsIncomplete: Int
    var outOfOrder: Int
    var streamsEnded: Int
    var deliveriesPerSecond: Double
    var latency: LatencyRecorder.Summary
    var untimedEvents: Int
    var serverRSSBeforeKiB: Int?
    var serverRSSOpenKiB: Int?
    /// Resident memory of the server(s) once every subscriber is open, before events flow.
    var kibPerSubscriber: Double?
    /// …and at the end of the measured window, with events flowing.
    var serverRSSEndKiB: Int?
    var kibPerSubscriberUnderLoad: Double?
    /// CPU time the hypervisor gave to other guests while events were driven (percent).
    var cpuStealPercent: Double?
    /// The server's processes' CPU while events were driven (100 = one core).
    var serverCPUPercent: Double?
    /// The server's CPU time per delivery in the measured window, in microseconds.
    var serverCPUMicrosPerDelivery: Double?
    /// This load generator's own CPU time per delivery (reading every stream, and driving).
    var readerCPUMicrosPerDelivery: Double?
    /// The whole machine's busy CPU time per delivery (server, generator, database, kernel
    /// threads): what one delivery costs end to end, softirq work the kernel moved off the
    /// server's threads included.
    var machineCPUMicrosPerDelivery: Double?
    /// Every connection dropped at once and every subscriber resumed (--reconnect-all).
    var reconnect: Reconnect?
    /// Vacancy only (--database-url): latency from each event's append to the log, the
    /// fan-out's share, measured from where a publish to another server starts.
    var logLatency: LatencyRecorder.Summary?

    struct Reconnect: Codable {
        /// Subscribers answered again, and how long after the drop the last one was.
        var subscribers: Int
        var seconds: Double
        /// Resumes the server counted, and its log-table reads for them (nil: not known).
        var resumes: Int?
        var tableReads: Int?
    }

    var line: String {
        let open = kibPerSubscriber.map { String(format: ", server RSS %.1f KiB/subscriber open", $0) } ?? ""
        let memory = open + (kibPerSubscriberUnderLoad.map { String(format: ", %.1f KiB under load", $0) } ?? "")
        let steal =
            (serverCPUPercent.map { String(format: ", server CPU %.0f %%", $0) } ?? "")
            + (serverCPUMicrosPerDelivery.map { String(format: " (%.1f µs/delivery)", $0) } ?? "")
            + (readerCPUMicrosPerDelivery.map { String(format: ", reader %.1f µs/delivery", $0) } ?? "")
            + (machineCPUMicrosPerDelivery.map { String(format: ", machine %.1f µs/delivery", $0) } ?? "")
            + (cpuStealPercent.map { String(format: ", CPU steal %.0f %%", $0) } ?? "")
            + (logLatency.map { String(format: "; log append → delivery p50 %.2f ms, p99 %.2f ms", $0.p50Milliseconds, $0.p99Milliseconds) }
                ?? "")
            + (reconnect.map { reconnect in
                String(format: "; all dropped at once: %d resumed with Last-Event-ID in %.2f s", reconnect.subscribers, reconnect.seconds)
                    + (reconnect.resumes.map { ", server resumes \($0)" } ?? "")
                    + (reconnect.tableReads.map { ", log-table reads for them \($0)" } ?? "")
            } ?? "")
        return String(
            format:
                "vacancy-bench: %@: %d %@ subscribers, %d events → %d deliveries (%d missing, %d out of order, %d streams ended), %.0f deliveries/s, event → delivery p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.1f ms%@%@",
            label, subscribers, transport, eventsDriven, deliveries, missing, outOfOrder, streamsEnded, deliveriesPerSecond,
            latency.p50Milliseconds, latency.p99Milliseconds, latency.p999Milliseconds, latency.maxMilliseconds, memory, steal)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension Double {
    func formatted(_ digits: Int) -> String { String(format: "%.\(digits)f", self) }
}
