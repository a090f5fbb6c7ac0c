import Foundation
import PostgresNIO
import TestSupport
import Testing

@testable import Availability

/// Invariants 2 and 3: every committed change reaches the events log, ids without gaps.
@Suite struct EventWriterTests {
    @Test func everyBookingChangeBecomesOrderedGapFreeEvents() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db) { _ in
                    var sessions: [String] = []
                    for index in 0..<50 { sessions.append(try await bookings.createSession(capacity: 40, daysAhead: 3 + index % 20)) }
                    let sessionIDs = sessions
                    // 1,000 changes: 800 bookings and holds, then cancels of some of them.
                    let created = try await withThrowingTaskGroup(of: String?.self) { group in
                        for index in 0..<800 {
                            group.addTask {
                                let response = try await bookings.book(
                                    session: sessionIDs[index % 50], adults: 1, customer: "c\(index % 37)",
                                    holdSeconds: index.isMultiple(of: 4) ? 600 : nil
                                )
                                return response.status == 201 ? response.string("id") : nil
                            }
                        }
                        return try await group.reduce(into: [String]()) { if let id = $1 { $0.append(id) } }
                    }
                    #expect(created.count == 800)
                    let toCancel = Array(created.prefix(200))
                    try await withThrowingTaskGroup(of: Int.self) { group in
                        for id in toCancel { group.addTask { try await bookings.post("/api/v1/bookings/\(id)/cancel", nil).status } }
                        for try await status in group { #expect(status == 200) }
                    }
                    #expect(try await db.eventually(within: 15) { try await db.changesDrained() })

                    let (count, minID, maxID) = try await db.database.query("SELECT count(*)::bigint, min(id), max(id) FROM events")[0]
                        .decode((Int64, Int64, Int64).self)
                    #expect(minID == 1 && maxID == count, "event ids are 1...\(count) with no gap")
                    #expect(try await db.scalar("SELECT count(*)::int FROM events WHERE type = 'booking.updated'") == 1000)
                    // The latest availability event of every session equals its row.
                    let mismatches = try await db.scalar(
                        """
                        SELECT count(*)::int FROM sessions s
                        LEFT JOIN LATERAL (
                            SELECT payload FROM events e
                            WHERE e.type = 'availability.updated' AND e.payload->>'session_id' = s.id::text
                            ORDER BY e.id DESC LIMIT 1
                        ) latest ON true
                        WHERE latest.payload IS NULL
                           OR (latest.payload->>'booked')::int <> s.booked
                           OR (latest.payload->>'held')::int <> s.held
                           OR (latest.payload->>'capacity')::int <> s.capacity
                        """
                    )
                    #expect(mismatches == 0)
                }
            }
        }
    }

    @Test func pollFindsChangesWithoutAnyNotify() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db, notifyChanges: false) { bookings in
                try await withCalculator(on: db, listen: false) { _ in
                    let session = try await bookings.createSession()
                    let started = ContinuousClock.now
                    #expect(try await bookings.book(session: session, adults: 2).status == 201)
                    #expect(try await db.eventually(within: 3) { try await db.changesDrained() })
                    let elapsed = ContinuousClock.now - started
                    #expect(elapsed < .milliseconds(2500), "the one-second poll picks the change up: \(elapsed)")
                    #expect(try await db.scalar("SELECT count(*)::int FROM events WHERE type = 'availability.updated'") >= 1)
                }
            }
        }
    }

    @Test func onlyOneCalculatorAppendsAndAStandbyTakesOver() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                let session = try await bookings.createSession(capacity: 50)
                try await withCalculator(on: db, pollInterval: .milliseconds(200)) { standbyURL in
                    let standbyLeads = try await withCalculator(on: db, pollInterval: .milliseconds(200)) { firstURL in
                        #expect(
                            try await db.eventually(within: 3) {
                                let leaders = try await [firstURL, standbyURL].asyncMap {
                                    try await TestHTTP.send(.GET, $0 + "/leader").json["leader"] as? Bool
                                }
                                return leaders.compactMap { $0 }.filter { $0 }.count == 1
                            })
                        #expect(try await bookings.book(session: session, adults: 1).status == 201)
                        #expect(try await db.eventually(within: 3) { try await db.changesDrained() })
                        return try await TestHTTP.send(.GET, standbyURL + "/leader").json["leader"] as? Bool ?? false
                    }
                    // Whichever led, the survivor leads within 5 s and drains what comes next.
                    #expect(
                        try await db.eventually(within: 5) {
                            try await TestHTTP.send(.GET, standbyURL + "/leader").json["leader"] as? Bool == true
                        })
                    #expect(try await bookings.book(session: session, adults: 1).status == 201)
                    #expect(
                        try await db.eventually(within: 3) { try await db.changesDrained() },
                        "the survivor drains (it led before: \(standbyLeads))")
                    let (count, maxID) = try await db.database.query("SELECT count(*)::bigint, max(id) FROM events")[0].decode(
                        (Int64, Int64).self)
                    #expect(count == maxID, "no gap across the hand-over")
                }
            }
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
