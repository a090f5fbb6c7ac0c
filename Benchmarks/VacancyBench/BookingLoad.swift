import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TestSupport

/// Books seats at a fixed rate (open loop: latency is measured from each request's
/// scheduled start, so a stall shows in the figures instead of slowing the load).
struct BookingLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bookings", abstract: "Sustained booking load at a fixed rate.")

    @Option(help: "Base URL of the bookings service.") var url = "http://127.0.0.1:8081"
    @Option(help: "API key.") var apiKey = "vacancy-dev-key"
    @Option(help: "Bookings per second to offer.") var rate = 1500
    @Option(help: "Seconds of measured load.") var duration = 20
    @Option(help: "Seconds of warm-up before measuring.") var warmup = 3
    @Option(help: "Sessions to spread bookings over.") var sessions = 200
    @Option(help: "HTTP connections to the service.") var connections = 64
    @Option(help: "Write the summary as JSON to this file.") var json: String?
    @Option(help: "A label for the summary line.") var label = "bookings"

    func run() async throws {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            try await measure(client)
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func measure(_ client: HTTPClient) async throws {
        let sessionIDs = try await createSessions(client)
        let recorder = LatencyRecorder()
        print("vacancy-bench: \(label): warming up \(warmup)s at \(rate)/s over \(sessionIDs.count) sessions")
        try await offerLoad(client, sessionIDs: sessionIDs, seconds: warmup, recorder: recorder)
        recorder.reset()
        print("vacancy-bench: \(label): measuring \(duration)s at \(rate)/s")
        let started = ContinuousClock.now
        try await offerLoad(client, sessionIDs: sessionIDs, seconds: duration, recorder: recorder)
        let elapsed = ContinuousClock.now - started
        let summary = recorder.summary()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let succeeded = summary.outcomes["201"] ?? 0
        let result = BookingResult(
            label: label, offeredRate: rate, seconds: seconds, bookingsPerSecond: Double(succeeded) / seconds, latency: summary
        )
        print(
            String(
                format: "vacancy-bench: %@: offered %d/s, booked %.0f/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.1f ms, outcomes %@",
                label, rate, result.bookingsPerSecond, summary.p50Milliseconds, summary.p99Milliseconds, summary.p999Milliseconds,
                summary.maxMilliseconds, summary.outcomes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            )
        )
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: json))
        }
    }

    private func createSessions(_ client: HTTPClient) async throws -> [String] {
        try await BookingsAPI(url: url, apiKey: apiKey).createSessions(client, count: sessions)
    }

    private func offerLoad(_ client: HTTPClient, sessionIDs: [String], seconds: Int, recorder: LatencyRecorder) async throws {
        try await BookingsAPI(url: url, apiKey: apiKey).book(
            sessionIDs: sessionIDs, rate: rate, seconds: seconds, connections: connections, recorder: recorder)
    }
}

/// The bookings service as the load generators drive it.
struct BookingsAPI: Sendable {
    let url: String
    let apiKey: String

    /// Sessions big enough that no booking in a run is refused for lack of seats.
    func createSessions(_ client: HTTPClient, count: Int, capacity: Int = 10_000) async throws -> [String] {
        var ids: [String] = []
        let start = Date().addingTimeInterval(86_400 * 3)
        for index in 0..<count {
            let request = SessionRequest(
                courseType: "Bench \(index % 4)", location: "Bench Hall", capacity: capacity,
                startsAt: start.addingTimeInterval(Double(index) * 3600))
            let response = try await send(client, path: "/api/v1/sessions", body: request.body)
            guard response.status == 201, let id = response.id else {
                throw ValidationError("creating a bench session answered \(response.status)")
            }
            ids.append(id)
        }
        return ids
    }

    /// Books one seat at a time at `rate` per second for `seconds`, round robin over the sessions.
    func book(sessionIDs: [String], rate: Int, seconds: Int, connections: Int, recorder: LatencyRecorder) async throws {
        let apiKey = self.apiKey
        try await offerFixedRate(url: url, rate: rate, seconds: seconds, connections: connections, recorder: recorder) { index, host in
            let session = sessionIDs[index % sessionIDs.count]
            let body = #"{"session_id": "\#(session)", "customer_id": "bench-\#(index % 5000)", "adult_count": 1}"#
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/api/v1/bookings")
            head.headers.add(name: "Host", value: host)
            head.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Idempotency-Key", value: UUID().uuidString)
            head.headers.add(name: "Content-Length", value: String(body.utf8.count))
            return (head, ByteBuffer(string: body))
        }
    }

    private struct Reply {
        var status: Int
        var id: String?
    }

    private func send(_ client: HTTPClient, path: String, body: String) async throws -> Reply {
        var request = HTTPClientRequest(url: url + path)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 1 << 20)
        let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]
        return Reply(status: Int(response.status.code), id: object?["id"] as? String)
    }
}

/// Open-loop load: request `index` is sent at `origin + index / rate` whether or not earlier
/// ones have been answered, pipelined over `connections` keep-alive connections; latency
/// counts from each request's scheduled time.
func offerFixedRate(
    url: String, rate: Int, seconds: Int, connections: Int, recorder: LatencyRecorder,
    request: (_ index: Int, _ host: String) -> (HTTPRequestHead, ByteBuffer)
) async throws {
    guard let components = URLComponents(string: url), let host = components.host else {
        throw ValidationError("\(url) is not http://host:port")
    }
    let load = try await PipelinedHTTPClient.connect(host: host, port: components.port ?? 80, connections: connections, recorder: recorder)
    let total = rate * seconds
    let interval = Duration.nanoseconds(1_000_000_000 / rate)
    let clock = ContinuousClock()
    let origin = clock.now
    for index in 0..<total {
        let scheduled = origin + interval * index
        if scheduled > clock.now { try? await clock.sleep(until: scheduled, tolerance: .microseconds(200)) }
        let (head, body) = request(index, host)
        load.send(head, body: body, on: index, scheduled: scheduled)
    }
    await load.drain(timeout: .seconds(30))
    await load.shutdown()
}

struct BookingResult: Codable {
    var label: String
    var offeredRate: Int
    var seconds: Double
    var bookingsPerSecond: Double
    var latency: LatencyRecorder.Summary
}
