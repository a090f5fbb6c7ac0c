import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization

/// Customers queueing for a few small sessions that are full, while others cancel seats
/// there and those offered a seat accept or decline it, all through the router, until
/// stopped. Remembers every answer, so the checks can hold the database to them.
final class WaitlistGang: Sendable {
    let api: RouterAPI
    let sessionIDs: [String]
    let clients: Int
    private let stopped = Mutex(false)
    private let requests = Atomic<Int>(0)
    /// Bookings holding seats of these sessions, anyone's to cancel: the seeded ones, seats
    /// booked directly when a join found some free, and accepted offers.
    private let seats: Mutex<[String]>

    private init(api: RouterAPI, sessionIDs: [String], clients: Int, seats: [String]) {
        self.api = api
        self.sessionIDs = sessionIDs
        self.clients = clients
        self.seats = Mutex(seats)
    }

    /// Makes `sessions` sessions of `capacity` seats and fills each, a seat per booking.
    static func prepare(api: RouterAPI, sessions: Int, capacity: Int, clients: Int) async throws -> (WaitlistGang, BookingGang.Outcome) {
        var ids: [String] = []
        var seats: [String] = []
        var outcome = BookingGang.Outcome()
        for index in 0..<sessions {
            let session = try await api.createSession(index: 200 + index, capacity: capacity)
            ids.append(session)
            for seat in 0..<capacity {
                let (status, id) = try await api.send(.book(session: session, customer: "seat-\(index)-\(seat)", seats: 1, hold: false))
                guard status == 201, let id, let uuid = UUID(uuidString: id) else {
                    throw ResilienceFailure("filling a waitlist session answered \(status)")
                }
                seats.append(id)
                outcome.acknowledged.append(uuid)
            }
        }
        return (WaitlistGang(api: api, sessionIDs: ids, clients: clients, seats: seats), outcome)
    }

    var requestsSoFar: Int { requests.load(ordering: .relaxed) }
    var isStopped: Bool { stopped.withLock { $0 } }
    func stop() { stopped.withLock { $0 = true } }

    func run() async -> BookingGang.Outcome {
        await withTaskGroup(of: BookingGang.Outcome.self) { group in
            for index in 0..<clients {
                group.addTask { await self.client(index: index) }
            }
            var merged = BookingGang.Outcome()
            for await outcome in group { merged.merge(outcome) }
            return merged
        }
    }

    private func takeSeat() -> String? {
        seats.withLock { seats in seats.isEmpty ? nil : seats.remove(at: Int.random(in: 0..<seats.count)) }
    }

    private func addSeat(_ id: String) {
        seats.withLock { $0.append(id) }
    }

    /// One client: joins lines as new customers, cancels seats, answers its own offers, and
    /// now and then leaves a line.
    private func client(index: Int) async -> BookingGang.Outcome {
        var outcome = BookingGang.Outcome()
        var mine: [String] = []
        var joins = 0
        while !isStopped {
            enum Action { case join, cancel, look, leave }
            let roll = Int.random(in: 0..<100)
            let action: Action = roll < 40 ? .join : roll < 65 || mine.isEmpty ? .cancel : roll < 92 ? .look : .leave
            var seat: String?
            if action == .cancel {
                seat = takeSeat()
                // Every seat is being offered or answered just now: wait a moment.
                if seat == nil {
                    try? await Task.sleep(for: .milliseconds(20))
                    continue
                }
            }
            outcome.requests += 1
            requests.add(1, ordering: .relaxed)
            do {
                switch action {
                case .join:
                    joins += 1
                    let customer = "line-\(index)-\(joins)"
                    let session = sessionIDs.randomElement()!
                    let seats = Int.random(in: 1...3)
                    let (status, object) = try await api.postJSON(
                        "/api/v1/sessions/\(session)/waitlist", body: #"{"customer_id": "\#(customer)", "adult_count": \#(seats)}"#,
                        idempotencyKey: UUID().uuidString)
                    outcome.byStatus[status, default: 0] += 1
                    if status == 201, let id = object?["id"] as? String, let uuid = UUID(uuidString: id) {
                        mine.append(id)
                        outcome.joined.append(uuid)
                    } else if status == 409, (object?["type"] as? String)?.hasSuffix("seats-available") == true {
                        // Seats are free that nobody waiting fits: book them, as a visitor would.
                        outcome.requests += 1
                        let (booked, id) = try await api.send(.book(session: session, customer: customer, seats: seats, hold: false))
                        outcome.byStatus[booked, default: 0] += 1
                        if booked == 201, let id, let uuid = UUID(uuidString: id) {
                            outcome.acknowledged.append(uuid)
                            addSeat(id)
                        }
                    }
                case .cancel:
                    guard let seat else { continue }
                    let (status, _) = try await api.send(.cancel(seat))
                    outcome.byStatus[status, default: 0] += 1
                    if (200..<300).contains(status), let uuid = UUID(uuidString: seat) { outcome.acknowledgedCancels.append(uuid) }
                case .look:
                    let picked = Int.random(in: 0..<mine.count)
                    let (status, object) = try await api.getJSON("/api/v1/waitlist/\(mine[picked])")
                    outcome.byStatus[status, default: 0] += 1
                    guard status == 200, let state = object?["status"] as? String else { continue }
                    if state == "offered", let offer = object?["offer"] as? [String: Any], let booking = offer["booking_id"] as? String {
                        outcome.requests += 1
                        let accept = Int.random(in: 0..<10) < 7
                        let (answered, _) = try await api.send(accept ? .confirm(booking) : .cancel(booking))
                        outcome.byStatus[answered, default: 0] += 1
                        guard (200..<300).contains(answered), let uuid = UUID(uuidString: booking) else { continue }
                        mine.remove(at: picked)
                        if accept {
                            outcome.acknowledged.append(uuid)
                            addSeat(booking)
                        } else {
                            outcome.acknowledgedCancels.append(uuid)
                        }
                    } else if state != "waiting" {
                        mine.remove(at: picked)
                    }
                case .leave:
                    let picked = Int.random(in: 0..<mine.count)
                    let (status, object) = try await api.postJSON(
                        "/api/v1/waitlist/\(mine[picked])/leave", body: nil, idempotencyKey: UUID().uuidString)
                    outcome.byStatus[status, default: 0] += 1
                    guard (200..<300).contains(status) else { continue }
                    let entry = mine.remove(at: picked)
                    // Leaving an entry that was offered meanwhile declines it: either way it is done.
                    // One that had ended already (its offer expired) is answered as it is.
                    if let left = object?["status"] as? String, left == "left" || left == "declined",
                        let uuid = UUID(uuidString: entry)
                    {
                        outcome.leftOrDeclined.append(uuid)
                    }
                }
            } catch {
                outcome.transportErrors += 1
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        return outcome
    }
}
