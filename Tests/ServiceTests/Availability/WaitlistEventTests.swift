import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Availability

/// What the calculator tells a customer about their place in a line: every status change in
/// order, and a position that moved once per batch; the session's availability carries the line.
@Suite struct WaitlistEventTests {
    @Test func customersAreToldTheirStatusAndPositionAndTheSessionItsLine() async throws {
        try await withBookings { bookings in
            try await withCalculator(on: bookings.db, pollInterval: .milliseconds(200)) { _ in
                let session = try await bookings.createSession(capacity: 1)
                let first = try await bookings.book(session: session, adults: 1, customer: "ada")
                let cleo = try await bookings.join(session, customer: "cleo")
                let dan = try await bookings.join(session, customer: "dan", adults: 1)
                await expectEventually(within: 5) { (try? await bookings.db.changesDrained()) == true }
                let waiting = try await Self.latestAvailability(session, in: bookings.db)
                #expect(waiting["waiting"] as? Int == 2 && waiting["waiting_seats"] as? Int == 2)

                #expect(try await bookings.post("/api/v1/bookings/\(try #require(first.string("id")))/cancel", nil).status == 200)
                await expectEventually(within: 5) { (try? await bookings.db.changesDrained()) == true }
                let cleoEvents = try await Self.waitlistEvents(for: "cleo", in: bookings.db)
                #expect(cleoEvents.map { $0["status"] as? String } == ["waiting", "offered"])
                #expect(cleoEvents.first?["position"] as? Int == 1)
                #expect(cleoEvents.last?["waitlist_id"] as? String == cleo.string("id"))
                let offer = cleoEvents.last?["offer"] as? [String: Any]
                #expect(offer?["booking_id"] is String && offer?["expires_at"] is String)
                // Dan moved up: told once the session's position pass is due.
                try await expectEventually(within: 5, "Dan is told he moved up") {
                    try await Self.waitlistEvents(for: "dan", in: bookings.db).map { $0["position"] as? Int } == [2, 1]
                }
                let danEvents = try await Self.waitlistEvents(for: "dan", in: bookings.db)
                #expect(danEvents.allSatisfy { $0["waitlist_id"] as? String == dan.string("id") })
                let after = try await Self.latestAvailability(session, in: bookings.db)
                #expect(after["waiting"] as? Int == 1 && after["held"] as? Int == 1 && after["available"] as? Int == 0)
            }
        }
    }

    /// A line whose head moves five times within the interval: each customer behind it is
    /// told at once of the first move and of the rest together when the interval is up, and
    /// ends knowing exactly where they stand.
    @Test func movedPositionsAreToldAtMostOncePerInterval() async throws {
        try await withBookings { bookings in
            try await withCalculator(on: bookings.db, pollInterval: .milliseconds(200), positionInterval: .seconds(5)) { _ in
                let session = try await bookings.createSession(capacity: 5)
                var seats: [String] = []
                for index in 0..<5 {
                    seats.append(try #require(try await bookings.book(session: session, adults: 1, customer: "s\(index)").string("id")))
                }
                for index in 0..<8 { #expect(try await bookings.join(session, customer: "q\(index)").status == 201) }
                try await expectEventually(within: 5) { try await bookings.db.changesDrained() }
                for seat in seats {
                    #expect(try await bookings.post("/api/v1/bookings/\(seat)/cancel", nil).status == 200)
                }
                // q5, q6 and q7 are left, at 1, 2 and 3.
                try await expectEventually(within: 12, "the last in line is told position 3") {
                    try await Self.waitlistEvents(for: "q7", in: bookings.db).last?["position"] as? Int == 3
                }
                let told = try await Self.waitlistEvents(for: "q7", in: bookings.db).compactMap { $0["position"] as? Int }
                #expect(told.first == 8 && told.count <= 3, "joined at 8, moved five times, told \(told)")
                for (customer, position) in [("q5", 1), ("q6", 2)] {
                    #expect(try await Self.waitlistEvents(for: customer, in: bookings.db).last?["position"] as? Int == position)
                }
                let untold = try await bookings.db.scalar(
                    """
                    SELECT count(*)::int FROM (
                        SELECT told.position AS told, row_number() OVER (ORDER BY w.line)::int AS position
                        FROM waitlist_entries w LEFT JOIN waitlist_positions told ON told.waitlist_id = w.id
                        WHERE w.session_id = \(UUID(uuidString: session)!) AND w.status = 'waiting'
                    ) ranked WHERE told IS DISTINCT FROM position
                    """)
                #expect(untold == 0, "every published position is the one told")
            }
        }
    }

    /// A pass over a long line is told a few positions per statement, the front first, each
    /// position once, until nothing is left untold.
    @Test func aPassTellsALongLineAFewPositionsAtATime() async throws {
        try await withBookings { bookings in
            let session = try await bookings.createSession(capacity: 1)
            #expect(try await bookings.book(session: session, adults: 1, customer: "seat").status == 201)
            for index in 0..<25 { #expect(try await bookings.join(session, customer: "p\(index)").status == 201) }
            let writer = EventWriter(
                url: bookings.db.url, wake: WakeSignal(), pollInterval: .seconds(1), batchSize: 100, rules: SeatRules(),
                clock: ClockTick(interval: .seconds(5), retentionHours: 24, keepAtLeast: 0), positionInterval: .zero,
                positionsPerStatement: 10, metrics: AppMetrics(), logger: TestEnvironment.logger)
            let sessionID = try #require(UUID(uuidString: session))
            let reached = try await bookings.db.url.withConnection(logger: TestEnvironment.logger) { connection in
                var reached: [Int64?] = []
                var pass = PositionSchedule.Pass(session: sessionID, after: 0)
                for _ in 0..<3 {
                    let step = try await writer.tellPositions([pass], on: connection)[sessionID] ?? nil
                    reached.append(step)
                    pass.after = step ?? 0
                }
                // Told: a pass from the front again finds nothing to tell.
                reached.append(
                    try await writer.tellPositions([PositionSchedule.Pass(session: sessionID, after: 0)], on: connection)[sessionID] ?? nil)
                return reached
            }
            let lines = try await bookings.db.database.query(
                "SELECT line FROM waitlist_entries WHERE session_id = \(sessionID) ORDER BY line"
            ).map { try $0.decode(Int64.self) }
            #expect(reached == [lines[9], lines[19], nil, nil], "10, 10, then the last 5 and the end; then nothing left")
            let rows = try await bookings.db.database.query(
                "SELECT id, payload->>'waitlist_id', (payload->>'position')::int, topics[1] FROM events WHERE type = 'waitlist.updated' ORDER BY id"
            )
            let told = try rows.map { try $0.decode((Int64, String, Int, String).self) }
            #expect(told.map(\.0) == Array(1...25), "ids follow on, without gaps")
            #expect(told.map(\.2) == Array(1...25), "the front of the line first, each position once")
            #expect(told.map(\.3) == (0..<25).map { Topic.user("p\($0)") })
        }
    }

    static func waitlistEvents(for customer: String, in db: TestDatabase) async throws -> [[String: Any]] {
        let rows = try await db.database.query(
            "SELECT payload::text FROM events WHERE type = 'waitlist.updated' AND \(Topic.user(customer)) = ANY(topics) ORDER BY id")
        return try rows.map { row in
            try JSONSerialization.jsonObject(with: Data(try row.decode(String.self).utf8)) as? [String: Any] ?? [:]
        }
    }

    static func latestAvailability(_ session: String, in db: TestDatabase) async throws -> [String: Any] {
        let rows = try await db.database.query(
            """
            SELECT payload::text FROM events WHERE type = 'availability.updated' AND payload->>'session_id' = \(session.lowercased())
            ORDER BY id DESC LIMIT 1
            """)
        return try JSONSerialization.jsonObject(with: Data(try rows[0].decode(String.self).utf8)) as? [String: Any] ?? [:]
    }
}
