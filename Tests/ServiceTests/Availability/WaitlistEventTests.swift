import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

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
                let danEvents = try await Self.waitlistEvents(for: "dan", in: bookings.db)
                #expect(danEvents.map { $0["position"] as? Int } == [2, 1], "Dan is told he moved up")
                #expect(danEvents.allSatisfy { $0["waitlist_id"] as? String == dan.string("id") })
                let after = try await Self.latestAvailability(session, in: bookings.db)
                #expect(after["waiting"] as? Int == 1 && after["held"] as? Int == 1 && after["available"] as? Int == 0)
            }
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
