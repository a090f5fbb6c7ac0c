import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Availability

/// Invariants 2 and 3: every committed change reaches the events log, ids without gaps.
@Suite(.timeLimit(.minutes(2))) struct EventWriterTests {
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
                    try await expectEventually(within: 15) { try await db.changesDrained() }

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

    /// The drain's cost must follow the batch, not the tables. The planner sizes the batch
    /// from the queue's statistics, taken while it was long, and as a plain join it hashed the
    /// whole bookings table for every batch (7 ms at 11,000 bookings for a batch of four,
    /// most of the commit → event latency).
    @Test func drainLooksUpRowsByKeyWhateverTheTablesHold() async throws {
        try await TestDatabase.with { db in
            _ = try await db.database.query(
                """
                INSERT INTO sessions (id, course_type, location, starts_at, ends_at, capacity, booked)
                SELECT gen_random_uuid(), 'Plan', 'Hall', now() + g * interval '1 hour', now() + g * interval '1 hour' + interval '1 hour',
                       10000, 100
                FROM generate_series(1, 200) g
                """)
            _ = try await db.database.query(
                """
                INSERT INTO bookings (id, session_id, customer_id, adult_count, child_count, seats, status)
                SELECT gen_random_uuid(), s.id, 'plan-' || g, 1, 0, 1, 'confirmed'
                FROM generate_series(1, 20000) g
                JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM sessions) s ON s.n = g % 200
                """)
            // A queue as it looks under load: statistics taken while it was long, most of it
            // since consumed.
            _ = try await db.database.query(
                "INSERT INTO changes (session_id, booking_id, kind) SELECT session_id, id, 'booking.created' FROM bookings")
            _ = try await db.database.query("ANALYZE")
            _ = try await db.database.query("DELETE FROM changes WHERE id > (SELECT min(id) + 4 FROM changes)")
            let plan = try await db.database.withConnection { connection in
                try await connection.query(
                    PostgresQuery(unsafeSQL: "PREPARE take(bigint, int, int, int) AS " + TakeChanges.sql), logger: .vacancyQuiet)
                let rows = try await connection.query("EXPLAIN EXECUTE take(1000, 3, 80, 172800)", logger: .vacancyQuiet).collect()
                return try rows.map { try $0.decode(String.self) }.joined(separator: "\n")
            }
            #expect(!plan.contains("Seq Scan on bookings"), "\(plan)")
            #expect(plan.contains("Index Scan using bookings_pkey"), "\(plan)")
        }
    }

    @Test func pollFindsChangesWithoutAnyNotify() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db, notifyChanges: false) { bookings in
                try await withCalculator(on: db, listen: false) { _ in
                    let session = try await bookings.createSession()
                    #expect(try await bookings.book(session: session, adults: 2).status == 201)
                    // Nothing NOTIFYs and nothing LISTENs: only the one-second poll can pick the change up.
                    try await expectEventually(within: 5) { try await db.changesDrained() }
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
                        try await expectEventually(within: 3) {
                            let leaders = try await [firstURL, standbyURL].asyncMap {
                                try await TestHTTP.send(.GET, $0 + "/leader").json["leader"] as? Bool
                            }
                            return leaders.compactMap { $0 }.filter { $0 }.count == 1
                        }
                        #expect(try await bookings.book(session: session, adults: 1).status == 201)
                        try await expectEventually(within: 3) { try await db.changesDrained() }
                        return try await TestHTTP.send(.GET, standbyURL + "/leader").json["leader"] as? Bool ?? false
                    }
                    // Whichever led, the survivor leads within 5 s and drains what comes next.
                    try await expectEventually(within: 5) {
                        try await TestHTTP.send(.GET, standbyURL + "/leader").json["leader"] as? Bool == true
                    }
                    #expect(try await bookings.book(session: session, adults: 1).status == 201)
                    try await expectEventually(within: 3, "the survivor drains (it led before: \(standbyLeads))") {
                        try await db.changesDrained()
                    }
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

@Suite(.timeLimit(.minutes(2))) struct EventWriterCrashTests {
    /// A backlog written straight into the tables: `sessions` sessions with one booking
    /// change each per round.
    func makeBacklog(_ db: TestDatabase, sessions: Int, rounds: Int) async throws {
        _ = try await db.database.query(
            """
            WITH s AS (
                INSERT INTO sessions (id, course_type, location, starts_at, ends_at, capacity)
                SELECT gen_random_uuid(), 'CPR', 'Location A', now() + interval '2 days', now() + interval '2 days 3 hours', 10000
                FROM generate_series(1, \(sessions))
                RETURNING id
            ), b AS (
                INSERT INTO bookings (id, session_id, customer_id, adult_count, child_count, seats, status)
                SELECT gen_random_uuid(), s.id, 'backlog-' || r, 1, 0, 1, 'confirmed'
                FROM s, generate_series(1, \(rounds)) r
                RETURNING id, session_id
            ), u AS (
                UPDATE sessions SET booked = \(rounds) WHERE id IN (SELECT id FROM s)
            )
            INSERT INTO changes (session_id, booking_id, kind) SELECT session_id, id, 'booking.created' FROM b
            """
        )
    }

    @Test func calculatorStoppedMidBacklogLosesAndRepeatsNothing() async throws {
        try await TestDatabase.with { db in
            try await makeBacklog(db, sessions: 40, rounds: 150)
            let total = 40 * 150
            // First run: stop it as soon as some, but not all, of the backlog is drained.
            try await withCalculator(on: db) { _ in
                let started = try await eventually(within: 10) { try await db.scalar("SELECT count(*)::int FROM changes") < total }
                #expect(started)
            }
            let leftAfterStop = try await db.scalar("SELECT count(*)::int FROM changes")
            // Second run finishes the job.
            try await withCalculator(on: db) { _ in
                let drained = try await eventually(within: 20) { try await db.changesDrained() }
                #expect(drained)
            }
            #expect(
                try await db.scalar("SELECT count(*)::int FROM events WHERE type = 'booking.updated'") == total,
                "stopped with \(leftAfterStop) left")
            #expect(
                try await db.scalar("SELECT count(DISTINCT payload->'booking'->>'id')::int FROM events WHERE type = 'booking.updated'")
                    == total,
                "each booking change published exactly once"
            )
            let (count, maxID) = try await db.database.query("SELECT count(*)::bigint, max(id) FROM events")[0].decode((Int64, Int64).self)
            #expect(count == maxID)
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct ListenerReconnectTests {
    @Test func listenerCutByTheServerReconnectsAndCatchesUp() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                // A poll and a tick so slow that only the listener can deliver within the test's limits.
                let slowClock = ClockTick(interval: .seconds(60), retentionHours: 24, keepAtLeast: 10_000)
                try await withCalculator(on: db, pollInterval: .seconds(30), clock: slowClock) { _ in
                    let session = try await bookings.createSession()
                    let first = try await eventually(within: 3) { try await db.changesDrained() }
                    #expect(first)
                    let cut = try await db.scalar(
                        "SELECT count(pg_terminate_backend(pid))::int FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND datname = current_database()"
                    )
                    #expect(cut == 1, "the calculator's LISTEN connection was cut")
                    #expect(try await bookings.book(session: session, adults: 1).status == 201)
                    let delivered = try await eventually(within: 3) { try await db.changesDrained() }
                    #expect(delivered, "the listener reconnects by itself and the change is drained well before the 30 s poll")
                }
            }
        }
    }
}
