import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import Shared

/// `vacancy-bench waitlist`: a full session with a long line, its seats cancelled at a fixed
/// rate, and the time from each cancel's commit to the offer it made reaching the offered
/// customer's own `user.{customer_id}` stream. The commit time is PostgreSQL's (the offer's
/// held booking is written by the cancel's transaction; `track_commit_timestamp` must be on),
/// the arrival the subscriber's wall clock, both on this machine.
struct WaitlistBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "waitlist",
        abstract: "Cancels seats of a full session with a line at a fixed rate; cancel commit → offer delivered, per entry.")

    @Option(help: "Waiting entries (and seats, and cancels).") var entries = 1000
    @Option(help: "Cancels per second.") var rate = 100
    @Option(help: "Bookings service.") var bookingsURL = "http://127.0.0.1:8081"
    @Option(help: "Fan-out service (the subscribers' streams).") var fanoutURL = "http://127.0.0.1:8083"
    @Option(help: "PostgreSQL URL of the Vacancy database (commit timestamps on).") var databaseURL =
        "postgres://postgres@127.0.0.1:54359/vacancy"
    @Option(help: "API key.") var apiKey = "vacancy-dev-key"
    @Option(help: "Secret the fan-out verifies subscriber tokens with (VACANCY_TOKEN_SECRET).") var tokenSecret =
        TokenSigner.developmentSecret
    @Option(help: "A label for the summary line.") var label = "waitlist"
    @Option(help: "Write the summary as JSON to this file.") var json: String?

    func run() async throws {
        let say = { (text: String) in print("vacancy-bench: \(label): \(text)") }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let pool = SSESubscribers(threads: 1)
        let stats = DeliveryStats(group: pool.group, keepArrivals: true)
        do {
            let result = try await measure(client: client, pool: pool, stats: stats, say: say)
            await pool.close()
            try await client.shutdown()
            print(result.line)
            if let json { try writeJSON(result, to: json) }
            guard result.missing == 0, result.offers == entries else {
                throw ValidationError("\(result.missing) offers never reached their subscriber; \(result.offers) of \(entries) offered")
            }
        } catch {
            await pool.close()
            try? await client.shutdown()
            throw error
        }
    }

    private func measure(client: HTTPClient, pool: SSESubscribers, stats: DeliveryStats, say: (String) -> Void) async throws
        -> WaitlistResult
    {
        let api = BookingsAPI(url: bookingsURL, apiKey: apiKey)
        guard let session = try await api.createSessions(client, count: 1, capacity: entries).first else {
            throw ValidationError("no bench session")
        }
        let seats = try await inParallel(entries, say: say, "seats booked") { index in
            try await post(client, "/api/v1/bookings", #"{"session_id": "\#(session)", "customer_id": "seat-\#(index)", "adult_count": 1}"#)
        }
        _ = try await inParallel(entries, say: say, "customers waiting") { index in
            try await post(client, "/api/v1/sessions/\(session)/waitlist", #"{"customer_id": "line-\#(index)", "adult_count": 1}"#)
        }

        let signer = TokenSigner(secret: tokenSecret)
        var uris: [String] = []
        for index in 0..<entries {
            let topic = Topic.user("line-\(index)")
            let token = try await signer.sign(
                SubscriberToken(sub: "line-\(index)", topics: [topic], expires: Date().addingTimeInterval(3600)))
            uris.append("/events?topic=\(topic)&token=\(token)")
        }
        let target = try SSESubscribers.target(fanoutURL)
        try await pool.openHTTP1(target, uris: uris, count: entries, stats: stats, timestampField: "updated_at") { _ in }
        let deadline = ContinuousClock.now + .seconds(60)
        while stats.openStreams + stats.failedStreams < entries, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        guard stats.openStreams == entries else {
            throw ValidationError("only \(stats.openStreams) of \(entries) subscribers got a stream (\(stats.failedStreams) refused)")
        }
        // Every customer's `waiting` event has arrived; what follows is the measured part.
        try await Task.sleep(for: .seconds(2))
        try await stats.reset()
        say("\(entries) waiting, one stream each; cancelling \(entries) seats at \(rate)/s")

        let recorder = LatencyRecorder()
        let started = ContinuousClock.now
        let apiKey = self.apiKey
        try await offerFixedRate(
            url: bookingsURL, rate: rate, seconds: max(1, entries / rate), connections: 4, recorder: recorder
        ) { index, host in
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/api/v1/bookings/\(seats[index % seats.count])/cancel")
            head.headers.add(name: "Host", value: host)
            head.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
            head.headers.add(name: "Content-Length", value: "0")
            return (head, ByteBuffer())
        }
        let cancelled = recorder.summary()
        let failures = cancelled.outcomes.filter { !$0.key.hasPrefix("2") }
        guard failures.isEmpty else { throw ValidationError("cancels failed: \(failures)") }
        // Let the last deliveries arrive: until nothing has come for two seconds.
        var settled = try await stats.merged().deliveries
        let tailEnd = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < tailEnd {
            try await Task.sleep(for: .seconds(2))
            let now = try await stats.merged().deliveries
            if now == settled { break }
            settled = now
        }
        let elapsed = ContinuousClock.now - started
        let tally = try await stats.merged()

        let url = try DatabaseURL(parsing: databaseURL)
        let offers = try await url.withConnection(logger: Logger(label: "bench")) { connection in
            try await connection.query(
                """
                SELECT e.id, (extract(epoch FROM pg_xact_commit_timestamp(b.xmin)) * 1000000)::bigint
                FROM events e JOIN bookings b ON b.id = (e.payload->'offer'->>'booking_id')::uuid
                WHERE e.type = 'waitlist.updated' AND e.payload->>'status' = 'offered'
                  AND (e.payload->>'session_id')::uuid = \(UUID(uuidString: session)!)
                """,
                logger: Logger(label: "bench")
            ).collect().map { try $0.decode((Int64, Int64?).self) }
        }
        let latencies = LatencyRecorder()
        var missing = 0
        for (id, committed) in offers {
            guard let committed else { throw ValidationError("no commit timestamp: start PostgreSQL with track_commit_timestamp=on") }
            guard let arrived = tally.arrivals[Int(id)] else {
                missing += 1
                continue
            }
            latencies.record(microseconds: UInt64(max(0, arrived - committed)), outcome: "offer")
        }
        let offerIDs = Set(offers.map { Int($0.0) })
        return WaitlistResult(
            label: label, entries: entries, cancelRate: rate, seconds: elapsed.seconds, offers: offers.count, missing: missing,
            otherEvents: tally.arrivals.keys.filter { !offerIDs.contains($0) }.count, latency: latencies.summary())
    }

    /// `count` requests, 32 at a time; returns the ids answered (201), in index order.
    private func inParallel(
        _ count: Int, say: (String) -> Void, _ what: String, _ request: @escaping @Sendable (Int) async throws -> String
    )
        async throws -> [String]
    {
        var ids = [String](repeating: "", count: count)
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            var next = 0
            func add() {
                let index = next
                next += 1
                group.addTask { (index, try await request(index)) }
            }
            while next < min(32, count) { add() }
            for try await (index, id) in group {
                ids[index] = id
                if next < count { add() }
            }
        }
        say("\(count) \(what)")
        return ids
    }

    private func post(_ client: HTTPClient, _ path: String, _ body: String) async throws -> String {
        var request = HTTPClientRequest(url: bookingsURL + path)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: UUID().uuidString)
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 1 << 20)
        let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]
        guard response.status == .created, let id = object?["id"] as? String else {
            throw ValidationError("POST \(path) answered \(response.status.code): \(String(buffer: buffer))")
        }
        return id
    }
}

struct WaitlistResult: Codable {
    var label: String
    var entries: Int
    var cancelRate: Int
    var seconds: Double
    /// Offers the cancels made (from the log).
    var offers: Int
    /// Offers that never reached their customer's stream.
    var missing: Int
    /// Other events the customers' streams carried meanwhile (moved positions).
    var otherEvents: Int
    var latency: LatencyRecorder.Summary

    var line: String {
        String(
            format:
                "vacancy-bench: %@: %d waiting, cancels at %d/s: %d offers, %d missing, %d position events; cancel commit → offer delivered p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.1f ms",
            label, entries, cancelRate, offers, missing, otherEvents, latency.p50Milliseconds, latency.p99Milliseconds,
            latency.p999Milliseconds, latency.maxMilliseconds)
    }
}
