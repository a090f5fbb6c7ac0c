import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization
import TestSupport

/// Scenario "booking storm": many clients booking, holding, confirming, cancelling and
/// rescheduling at random through the router; afterwards the invariants must hold.
struct BookingStorm {
    let stack: Stack
    let client: HTTPClient
    let clients: Int
    let seconds: Int
    let sessions: Int

    func run() async throws -> ScenarioResult {
        let api = RouterAPI(baseURL: stack.routerURL, client: client)
        var sessionIDs: [String] = []
        for index in 0..<sessions {
            sessionIDs.append(try await api.createSession(index: index, capacity: 20))
        }
        say("resilience: storm: \(clients) clients on \(sessions) sessions for \(seconds) s")
        let started = ContinuousClock.now
        let gang = BookingGang(api: api, sessionIDs: sessionIDs, clients: clients)
        let outcome = await withTaskGroup(of: BookingGang.Outcome?.self) { group in
            group.addTask { await gang.run() }
            group.addTask {
                for elapsed in stride(from: 10, through: seconds, by: 10) {
                    try? await Task.sleep(until: started + .seconds(elapsed))
                    say("resilience: storm: \(elapsed) of \(seconds) s, \(gang.requestsSoFar) requests")
                }
                try? await Task.sleep(until: started + .seconds(seconds))
                gang.stop()
                return nil
            }
            var merged: BookingGang.Outcome?
            for await outcome in group where outcome != nil { merged = outcome }
            return merged ?? BookingGang.Outcome()
        }
        let elapsed = ContinuousClock.now - started
        let check = try await InvariantCheck.check(databaseURL: stack.databaseURL, outcome: outcome)
        let rate = Double(outcome.requests) / elapsed.seconds
        let line =
            "storm: \(clients) clients, \(seconds) s, \(outcome.requests) requests (\(Int(rate))/s): \(outcome.statusSummary), "
            + "transport errors \(outcome.transportErrors); \(check.summary)"
        return ScenarioResult(
            name: "Booking storm",
            load: "\(clients) clients on \(sessions) sessions for \(seconds) s through the router, \(Int(rate)) requests/s",
            faults: "none (contention only)", eventsChecked: check.events, lost: check.staleEvents + check.lostAcknowledged,
            duplicated: 0, overCapacity: check.overCapacity, passed: check.holds && outcome.serverErrors == 0, line: line)
    }
}

/// Clients booking, holding, confirming, cancelling and rescheduling at random until
/// stopped; remembers every answer it got, so the checks can hold the database to them.
final class BookingGang: Sendable {
    let api: RouterAPI
    let sessionIDs: [String]
    let clients: Int
    private let stopped = Mutex(false)
    private let requests = Atomic<Int>(0)

    init(api: RouterAPI, sessionIDs: [String], clients: Int) {
        self.api = api
        self.sessionIDs = sessionIDs
        self.clients = clients
    }

    struct Outcome: Sendable {
        var requests = 0
        var byStatus: [Int: Int] = [:]
        var transportErrors = 0
        /// Bookings answered 201.
        var acknowledged: [UUID] = []
        /// Bookings whose cancel was answered 2xx (nothing touches them afterwards).
        var acknowledgedCancels: [UUID] = []
        /// Waitlist entries whose join was answered 201.
        var joined: [UUID] = []
        /// Entries whose leave was answered 2xx: left, or declined if offered meanwhile.
        var leftOrDeclined: [UUID] = []

        var serverErrors: Int { byStatus.filter { $0.key == 500 }.values.reduce(0, +) }
        var statusSummary: String { byStatus.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ") }

        mutating func merge(_ other: Outcome) {
            requests += other.requests
            transportErrors += other.transportErrors
            acknowledged += other.acknowledged
            acknowledgedCancels += other.acknowledgedCancels
            joined += other.joined
            leftOrDeclined += other.leftOrDeclined
            for (status, count) in other.byStatus { byStatus[status, default: 0] += count }
        }
    }

    var requestsSoFar: Int { requests.load(ordering: .relaxed) }
    var isStopped: Bool { stopped.withLock { $0 } }
    func stop() { stopped.withLock { $0 = true } }

    /// Runs every client until `stop()`; returns what they were answered.
    func run() async -> Outcome {
        await withTaskGroup(of: Outcome.self) { group in
            for index in 0..<clients {
                group.addTask { await self.client(index: index) }
            }
            var merged = Outcome()
            for await outcome in group { merged.merge(outcome) }
            return merged
        }
    }

    /// One client: a random walk over its own bookings.
    private func client(index: Int) async -> Outcome {
        var outcome = Outcome()
        var mine: [(id: String, held: Bool)] = []
        var generator = SystemRandomNumberGenerator()
        while !isStopped {
            let roll = Int.random(in: 0..<100, using: &generator)
            let session = sessionIDs.randomElement(using: &generator)!
            let call: RouterAPI.Call
            var picked: Int?
            if roll < 60 || mine.isEmpty {
                let hold = roll >= 40 && roll < 60
                call = .book(session: session, customer: "storm-\(index)", seats: Int.random(in: 1...3, using: &generator), hold: hold)
            } else {
                picked = Int.random(in: 0..<mine.count, using: &generator)
                let booking = mine[picked!]
                if roll < 70 {
                    call = .confirm(booking.id)
                } else if roll < 90 {
                    call = .cancel(booking.id)
                } else {
                    call = .reschedule(booking.id, to: session)
                }
            }
            outcome.requests += 1
            requests.add(1, ordering: .relaxed)
            do {
                let (status, id) = try await api.send(call)
                outcome.byStatus[status, default: 0] += 1
                // Unavailable for a moment (the database is failing over): back off as told, not spin.
                if status == 503 { try? await Task.sleep(for: .milliseconds(200)) }
                switch call {
                case .book(_, _, _, let hold) where status == 201:
                    if let id, let uuid = UUID(uuidString: id) {
                        outcome.acknowledged.append(uuid)
                        mine.append((id, hold))
                    }
                case .cancel(let id) where (200..<300).contains(status):
                    mine.remove(at: picked!)
                    if let uuid = UUID(uuidString: id) { outcome.acknowledgedCancels.append(uuid) }
                case .confirm where (200..<300).contains(status):
                    mine[picked!].held = false
                default:
                    break
                }
            } catch {
                outcome.transportErrors += 1
                // The stack is down for a moment (a fault): do not spin.
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        return outcome
    }
}

extension Duration {
    /// The duration in whole milliseconds.
    var milliseconds: Int { Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000) }
}

/// The bookings API as clients reach it: through the router, with the dev key.
struct RouterAPI: Sendable {
    let baseURL: String
    let client: HTTPClient

    enum Call {
        case book(session: String, customer: String, seats: Int, hold: Bool)
        case confirm(String)
        case cancel(String)
        case reschedule(String, to: String)
    }

    /// `count` sessions, numbered from `first` (their start times follow from it), one by one.
    func createSessions(_ count: Int, from first: Int, capacity: Int) async throws -> [String] {
        var ids: [String] = []
        for index in first..<first + count { ids.append(try await createSession(index: index, capacity: capacity)) }
        return ids
    }

    func createSession(index: Int, capacity: Int) async throws -> String {
        let request = SessionRequest(
            courseType: "Resilience \(index % 4)", location: "Location \(index % 2 == 0 ? "A" : "B")", capacity: capacity,
            startsAt: Date().addingTimeInterval(86_400 * 2 + Double(index) * 3600))
        let (status, id) = try await post("/api/v1/sessions", body: request.body)
        guard status == 201, let id else { throw ResilienceFailure("creating a session answered \(status)") }
        return id
    }

    func send(_ call: Call) async throws -> (status: Int, id: String?) {
        switch call {
        case .book(let session, let customer, let seats, let hold):
            let holdField = hold ? #", "hold_seconds": 120"# : ""
            return try await post(
                "/api/v1/bookings",
                body: #"{"session_id": "\#(session)", "customer_id": "\#(customer)", "adult_count": \#(seats)\#(holdField)}"#,
                idempotencyKey: UUID().uuidString)
        case .confirm(let id):
            return try await post("/api/v1/bookings/\(id)/confirm", body: nil)
        case .cancel(let id):
            return try await post("/api/v1/bookings/\(id)/cancel", body: nil)
        case .reschedule(let id, let session):
            return try await post("/api/v1/bookings/\(id)/reschedule", body: #"{"session_id": "\#(session)"}"#)
        }
    }

    func post(_ path: String, body: String?, idempotencyKey: String? = nil, apiKey: String = Stack.apiKey) async throws -> (
        status: Int, id: String?
    ) {
        let (status, object) = try await postJSON(path, body: body, idempotencyKey: idempotencyKey, apiKey: apiKey)
        return (status, object?["id"] as? String)
    }

    func getJSON(_ path: String, apiKey: String = Stack.apiKey) async throws -> (status: Int, object: [String: Any]?) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        return try await exchange(request)
    }

    func postJSON(_ path: String, body: String?, idempotencyKey: String? = nil, apiKey: String = Stack.apiKey) async throws -> (
        status: Int, object: [String: Any]?
    ) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        if let idempotencyKey { request.headers.add(name: "Idempotency-Key", value: idempotencyKey) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        return try await exchange(request)
    }

    /// Sends `request`; its status and JSON body.
    private func exchange(_ request: HTTPClientRequest) async throws -> (status: Int, object: [String: Any]?) {
        let response = try await client.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 1 << 20)
        let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]
        return (Int(response.status.code), object)
    }
}
