import Foundation
import PostgresNIO
import TestSupport
import Testing

@testable import Availability

@Suite(.timeLimit(.minutes(2))) struct ClockTickTests {
    static let fastClock = ClockTick(interval: .milliseconds(200), retentionHours: 24, keepAtLeast: 10_000)

    @Test func aSessionThatStartsIsPublishedClosedOnce() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db, clock: Self.fastClock) { _ in
                    let session = try await bookings.createSession()
                    let published = try await eventually(within: 3) {
                        try await db.scalar("SELECT count(*)::int FROM availability_levels WHERE level = 'open'") == 1
                    }
                    #expect(published)
                    // Time passes: the session starts.
                    _ = try await db.database.query(
                        "UPDATE sessions SET starts_at = now() - interval '1 minute', ends_at = now() + interval '1 hour' WHERE id = \(UUID(uuidString: session)!)"
                    )
                    let closed = try await eventually(within: 3) {
                        try await db.scalar(
                            "SELECT count(*)::int FROM events WHERE type = 'availability.updated' AND payload->>'level' = 'closed'"
                        ) == 1
                    }
                    #expect(closed, "the tick publishes the started session as closed")
                    try await Task.sleep(for: .milliseconds(800))
                    #expect(
                        try await db.scalar(
                            "SELECT count(*)::int FROM events WHERE payload->>'level' = 'closed' AND type = 'availability.updated'") == 1,
                        "and only once"
                    )
                }
            }
        }
    }

    @Test func retentionPrunesOldEventsButKeepsTheNewest() async throws {
        try await TestDatabase.with { db in
            _ = try await db.database.query(
                """
                INSERT INTO events (id, topics, type, payload, created_at)
                SELECT g, ARRAY['availability'], 'availability.updated', '{}'::jsonb, now() - interval '2 days'
                FROM generate_series(1, 12500) g
                """
            )
            try await withCalculator(on: db, clock: Self.fastClock) { _ in
                let pruned = try await eventually(within: 20) { try await db.scalar("SELECT count(*)::int FROM events") == 10_000 }
                #expect(pruned)
            }
            #expect(try await db.scalar("SELECT min(id)::int FROM events") == 2501, "the newest 10,000 stay")
        }
    }
}
