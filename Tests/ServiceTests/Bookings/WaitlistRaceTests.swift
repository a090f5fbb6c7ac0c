import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Bookings

/// Many joins racing cancels and expiries on one full session, all real concurrent requests:
/// the line is honoured at every step (replayed from the change log, which records each
/// session's changes in the order its row lock let them happen).
@Suite struct WaitlistRaceTests {
    @Test func joinsRacingCancelsAndExpiriesHonourTheLine() async throws {
        try await withBookings(sweepInterval: .milliseconds(100)) { harness in
            let session = try await harness.createSession(capacity: 12)
            for index in 0..<12 {
                #expect(try await harness.book(session: session, adults: 1, customer: "seed\(index)").status == 201)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let status = try await harness.join(session, customer: "w\(index)", adults: 1 + index % 3).status
                        // 409 `seats-available` when a join lands while seats are free that no one waiting fits.
                        #expect(status == 201 || status == 409, "join \(index): \(status)")
                    }
                }
                for round in 0..<30 {
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(20 * round))
                        var booking = try await Self.liveBooking(of: session, status: "confirmed", harness: harness)
                        if booking == nil { booking = try await Self.liveBooking(of: session, status: "held", harness: harness) }
                        if let booking {
                            let status = try await harness.post("/api/v1/bookings/\(booking)/cancel", nil).status
                            #expect(status == 200)
                        }
                    }
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(20 * round + 10))
                        // An offer whose time is up: the sweep expires it, as it would after offer_seconds.
                        if let booking = try await Self.liveBooking(of: session, status: "held", harness: harness) {
                            try await harness.db.database.query(
                                "UPDATE bookings SET expires_at = now() WHERE id = \(booking) AND status = 'held'")
                        }
                    }
                }
                try await group.waitForAll()
            }
            // Quiescence: no hold left past its time.
            await expectEventually(within: 10, "every due hold has expired") {
                (try? await harness.db.database.query(
                    "SELECT count(*)::int FROM bookings WHERE status = 'held' AND expires_at <= now()"
                ).first?.decode(Int.self)) == 0
            }

            let row = try await harness.sessionRow(session)
            #expect(row.booked + row.held <= row.capacity)
            let seats = try await harness.db.database.query(
                """
                SELECT coalesce(sum(seats) FILTER (WHERE status = 'confirmed'), 0)::int, coalesce(sum(seats) FILTER (WHERE status = 'held'), 0)::int
                FROM bookings WHERE session_id = \(UUID(uuidString: session)!)
                """)
            #expect(try seats[0].decode((Int, Int).self) == (row.booked, row.held), "the counts are the bookings' seats")
            let free = row.capacity - row.booked - row.held
            let fitting = try await harness.db.database.query(
                "SELECT count(*)::int FROM waitlist_entries WHERE session_id = \(UUID(uuidString: session)!) AND status = 'waiting' AND seats <= \(free)"
            )
            #expect(try fitting[0].decode(Int.self) == 0, "no waiting entry fits the \(free) free seats")
            let counters = try await harness.waitlistRow(session)
            let waiting = try await harness.db.database.query(
                "SELECT count(*)::int, coalesce(sum(seats), 0)::int FROM waitlist_entries WHERE session_id = \(UUID(uuidString: session)!) AND status = 'waiting'"
            )
            #expect(try waiting[0].decode((Int, Int).self) == (counters.waiting, counters.waitingSeats))

            // Every offered entry has exactly one booking, its own, for its seats.
            let offers = try await harness.db.database.query(
                """
                SELECT count(*)::int FROM waitlist_entries w LEFT JOIN bookings b ON b.id = w.booking_id
                WHERE w.session_id = \(UUID(uuidString: session)!) AND w.status IN ('offered', 'accepted', 'declined', 'expired')
                  AND (b.id IS NULL OR b.customer_id <> w.customer_id OR b.seats <> w.seats OR b.session_id <> w.session_id)
                """)
            #expect(try offers[0].decode(Int.self) == 0)
            let liveOffers = try await harness.db.database.query(
                """
                SELECT count(*)::int FROM waitlist_entries w JOIN bookings b ON b.id = w.booking_id
                WHERE w.session_id = \(UUID(uuidString: session)!) AND w.status = 'offered' AND b.status <> 'held'
                """)
            #expect(try liveOffers[0].decode(Int.self) == 0, "an offered entry's booking is held")

            // Replay the line from the change log.
            let entries = try await harness.db.database.query(
                "SELECT id, seats, line FROM waitlist_entries WHERE session_id = \(UUID(uuidString: session)!)")
            var known: [UUID: WaitlistReplay.Entry] = [:]
            for entry in entries {
                let (id, seats, line) = try entry.decode((UUID, Int, Int64).self)
                known[id] = WaitlistReplay.Entry(session: UUID(uuidString: session)!, line: line, seats: seats)
            }
            var replay = WaitlistReplay(entries: known)
            for (entry, kind) in try await harness.waitlistChanges(session) {
                let status = try #require(ChangeKind(rawValue: kind)?.waitlistStatus, "\(kind) is a waitlist change")
                replay.apply(entry, status: status.rawValue)
            }
            #expect(replay.offers > 0, "the race did offer seats")
            #expect(
                replay.lineJumps.isEmpty, "offered out of turn (an earlier entry that fits as well was passed over): \(replay.lineJumps)")
            #expect(replay.badSequences.isEmpty, "\(replay.badSequences)")
            #expect(replay.unknown == 0)
        }
    }

    /// Some live booking of `session` with `status`, picked at random.
    static func liveBooking(of session: String, status: String, harness: BookingsHarness) async throws -> UUID? {
        let rows = try await harness.db.database.query(
            "SELECT id FROM bookings WHERE session_id = \(UUID(uuidString: session)!) AND status = \(status) ORDER BY random() LIMIT 1")
        return try rows.first?.decode(UUID.self)
    }
}
