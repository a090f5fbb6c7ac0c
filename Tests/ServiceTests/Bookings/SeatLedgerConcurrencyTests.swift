import Foundation
import Shared
import TestSupport
import Testing

@testable import Bookings

/// Invariant 1: never overbook, under real concurrent requests.
@Suite(.timeLimit(.minutes(2))) struct SeatLedgerConcurrencyTests {
    @Test func concurrentBookingsNeverExceedCapacity() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 12)
            let requests = (0..<300).map { index in (index, Int.random(in: 1...3)) }
            let outcomes = try await withThrowingTaskGroup(of: (status: Int, seats: Int, contentType: String).self) { group in
                for (index, seats) in requests {
                    group.addTask {
                        let response = try await harness.book(session: session, adults: seats, customer: "racer-\(index)")
                        return (response.status, seats, response.contentType)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let winners = outcomes.filter { $0.status == 201 }
            let losers = outcomes.filter { $0.status != 201 }
            #expect(outcomes.count == 300)
            #expect(winners.map(\.seats).reduce(0, +) == 12, "confirmed seats must total exactly the capacity")
            #expect(losers.allSatisfy { $0.status == 409 && $0.contentType == "application/problem+json" })
            let row = try await harness.sessionRow(session)
            #expect(row.booked == 12 && row.held == 0)
            #expect(row.booked + row.held <= row.capacity)
            let bookedSeats = try await harness.db.scalar("SELECT coalesce(sum(seats), 0)::int FROM bookings WHERE status = 'confirmed'")
            #expect(bookedSeats == 12)
            let changes = try await harness.db.scalar("SELECT count(*)::int FROM changes WHERE kind = 'booking.created'")
            #expect(changes == winners.count, "one changes row per successful booking")
        }
    }

    @Test func mixedHoldsCancelsAndReschedulesKeepSeatCountsExact() async throws {
        try await withBookings { harness in
            let sessionA = try await harness.createSession(capacity: 12)
            let sessionB = try await harness.createSession(capacity: 12, daysAhead: 8)
            // Seed some bookings so cancels and reschedules have something to act on.
            var seeded: [String] = []
            for index in 0..<8 {
                let response = try await harness.book(
                    session: index.isMultiple(of: 2) ? sessionA : sessionB, adults: 1,
                    customer: "seed-\(index)", holdSeconds: index.isMultiple(of: 3) ? 600 : nil
                )
                #expect(response.status == 201)
                if let id = response.string("id") { seeded.append(id) }
            }
            let seededIDs = seeded
            let statuses = try await withThrowingTaskGroup(of: (String, Int).self) { group in
                for index in 0..<240 {
                    group.addTask {
                        let target = index.isMultiple(of: 2) ? sessionA : sessionB
                        switch index % 6 {
                        case 0, 1:
                            return (
                                "book",
                                try await harness.book(session: target, adults: Int.random(in: 1...2), customer: "mix-\(index)").status
                            )
                        case 2:
                            return (
                                "hold",
                                try await harness.book(session: target, adults: 1, customer: "mix-\(index)", holdSeconds: 600).status
                            )
                        case 3:
                            let id = seededIDs[index % seededIDs.count]
                            return ("cancel", try await harness.post("/api/v1/bookings/\(id)/cancel", nil).status)
                        case 4:
                            let id = seededIDs[(index / 6) % seededIDs.count]
                            let to = index.isMultiple(of: 4) ? sessionA : sessionB
                            return (
                                "reschedule",
                                try await harness.post("/api/v1/bookings/\(id)/reschedule", #"{"session_id": "\#(to)"}"#).status
                            )
                        default:
                            let id = seededIDs[(index / 5) % seededIDs.count]
                            return ("confirm", try await harness.post("/api/v1/bookings/\(id)/confirm", nil).status)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            // Every answer is a success or a clean refusal, never a 5xx.
            for (operation, status) in statuses {
                #expect([200, 201, 409, 422].contains(status), "\(operation) answered \(status)")
            }
            for session in [sessionA, sessionB] {
                let row = try await harness.sessionRow(session)
                #expect(row.booked + row.held <= row.capacity)
                let sums = try await harness.db.database.query(
                    """
                    SELECT coalesce(sum(seats) FILTER (WHERE status = 'confirmed'), 0)::int,
                           coalesce(sum(seats) FILTER (WHERE status = 'held'), 0)::int
                    FROM bookings WHERE session_id = \(UUID(uuidString: session)!)
                    """
                )
                let (confirmed, held) = try sums[0].decode((Int, Int).self)
                #expect(row.booked == confirmed, "booked must equal the confirmed bookings' seats")
                #expect(row.held == held, "held must equal the live holds' seats")
            }
            let seatChanges = try await harness.db.scalar(
                "SELECT count(*)::int FROM changes WHERE kind IN ('booking.created', 'booking.cancelled', 'booking.confirmed')"
            )
            let reschedules = try await harness.db.scalar("SELECT count(*)::int FROM changes WHERE kind = 'booking.rescheduled'")
            let succeeded = statuses.filter { ["book", "hold"].contains($0.0) && $0.1 == 201 }.count
            #expect(seatChanges >= succeeded + 8)
            #expect(reschedules.isMultiple(of: 2), "a reschedule writes one change for each of its two sessions")
        }
    }

    @Test func rescheduleToFullSessionLeavesBookingUntouched() async throws {
        try await withBookings { harness in
            let original = try await harness.createSession(capacity: 12)
            let full = try await harness.createSession(capacity: 2, daysAhead: 9)
            let booking = try await harness.book(session: original, adults: 2)
            #expect(booking.status == 201)
            #expect(try await harness.book(session: full, adults: 2).status == 201)
            let before = try await harness.db.contentDigest()
            let id = try #require(booking.string("id"))
            let response = try await harness.post("/api/v1/bookings/\(id)/reschedule", #"{"session_id": "\#(full)"}"#)
            #expect(response.status == 409)
            #expect(response.string("type")?.hasSuffix("/sold-out") == true)
            #expect(response.int("available") == 0)
            #expect(try await harness.db.contentDigest() == before, "a refused reschedule changes nothing")
            let fetched = try await harness.get("/api/v1/bookings/\(id)")
            #expect(fetched.string("session_id") == original)
            #expect(try await harness.sessionRow(original).booked == 2)
        }
    }

    @Test func rescheduleMovesSeatsAtomically() async throws {
        try await withBookings { harness in
            let from = try await harness.createSession(capacity: 12)
            let to = try await harness.createSession(capacity: 12, daysAhead: 9)
            let booking = try await harness.book(session: from, adults: 2, children: 1)
            let id = try #require(booking.string("id"))
            let moved = try await harness.post("/api/v1/bookings/\(id)/reschedule", #"{"session_id": "\#(to)"}"#)
            #expect(moved.status == 200)
            #expect(moved.string("session_id") == to)
            #expect(try await harness.sessionRow(from).booked == 0)
            #expect(try await harness.sessionRow(to).booked == 3)
        }
    }
}
