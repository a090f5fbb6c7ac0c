import Foundation
import Shared
import TestSupport
import Testing

@testable import Bookings

@Suite(.timeLimit(.minutes(2))) struct HoldExpiryTests {
    /// Moves a hold's expiry into the past, as if its time had run out.
    func expire(_ id: String, in harness: BookingsHarness) async throws {
        _ = try await harness.db.database.query(
            "UPDATE bookings SET expires_at = now() - interval '1 second' WHERE id = \(UUID(uuidString: id)!)"
        )
    }

    func waitUntil(seconds: Double, _ condition: @Sendable () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    @Test func expiredHoldReturnsItsSeatsAndCannotBeConfirmed() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 4)
            let hold = try await harness.book(session: session, adults: 3, holdSeconds: 60)
            #expect(hold.status == 201)
            #expect(hold.string("status") == "held")
            #expect(try await harness.sessionRow(session).held == 3)
            let id = try #require(hold.string("id"))
            try await expire(id, in: harness)
            let returned = try await waitUntil(seconds: 5) { try await harness.sessionRow(session).held == 0 }
            #expect(returned, "seats come back within 5 s of expiry")
            #expect(try await harness.get("/api/v1/bookings/\(id)").string("status") == "expired")
            let confirm = try await harness.post("/api/v1/bookings/\(id)/confirm", nil)
            #expect(confirm.status == 409)
            #expect(confirm.string("type")?.hasSuffix("/hold-expired") == true)
            #expect(try await harness.db.scalar("SELECT count(*)::int FROM changes WHERE kind = 'booking.expired'") == 1)
        }
    }

    @Test func confirmAfterExpiryBeforeTheSweepIsRefused() async throws {
        // A long sweep interval: the hold is past its time but not yet swept.
        try await withBookings(sweepInterval: .seconds(60)) { harness in
            let session = try await harness.createSession(capacity: 4)
            let id = try #require(try await harness.book(session: session, adults: 1, holdSeconds: 60).string("id"))
            try await expire(id, in: harness)
            #expect(try await harness.post("/api/v1/bookings/\(id)/confirm", nil).status == 409)
            #expect(try await harness.sessionRow(session).booked == 0)
        }
    }

    @Test func confirmedHoldKeepsItsSeats() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 4)
            let id = try #require(try await harness.book(session: session, adults: 2, holdSeconds: 120).string("id"))
            let confirmed = try await harness.post("/api/v1/bookings/\(id)/confirm", nil)
            #expect(confirmed.status == 200)
            #expect(confirmed.string("status") == "confirmed")
            let row = try await harness.sessionRow(session)
            #expect(row.booked == 2 && row.held == 0)
            #expect(try await harness.post("/api/v1/bookings/\(id)/confirm", nil).status == 200, "confirming twice is harmless")
        }
    }

    @Test func severalInstancesExpireEachHoldOnce() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { first in
                try await withBookingsService(on: db) { _ in
                    let session = try await first.createSession(capacity: 40)
                    var ids: [String] = []
                    for index in 0..<30 {
                        let hold = try await first.book(session: session, adults: 1, customer: "h\(index)", holdSeconds: 60)
                        ids.append(try #require(hold.string("id")))
                    }
                    _ = try await db.database.query("UPDATE bookings SET expires_at = now() - interval '1 second'")
                    let done = try await waitUntil(seconds: 5) { try await first.sessionRow(session).held == 0 }
                    #expect(done)
                    #expect(try await db.scalar("SELECT count(*)::int FROM changes WHERE kind = 'booking.expired'") == 30)
                    #expect(try await db.scalar("SELECT count(*)::int FROM bookings WHERE status = 'expired'") == 30)
                }
            }
        }
    }
}
