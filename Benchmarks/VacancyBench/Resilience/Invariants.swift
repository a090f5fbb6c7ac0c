import Foundation
import Logging
import PostgresNIO
import Shared

/// The invariants of DESIGN.md, read from the database after a scenario.
struct InvariantCheck: Codable {
    var sessions = 0
    /// Sessions with `booked + held > capacity` (invariant 1).
    var overCapacity = 0
    /// Sessions whose seat counts differ from their confirmed and held bookings.
    var seatMismatches = 0
    /// Sessions whose last `availability.updated` event differs from the row, or is missing (invariant 2).
    var staleEvents = 0
    /// Places where event ids skip (invariant 3).
    var eventGaps = 0
    /// Bookings acknowledged with 2xx that are not in the database, or whose acknowledged
    /// cancel did not stick.
    var lostAcknowledged = 0
    var events = 0

    var holds: Bool { overCapacity == 0 && seatMismatches == 0 && staleEvents == 0 && eventGaps == 0 && lostAcknowledged == 0 }

    var summary: String {
        "sessions \(sessions): over capacity \(overCapacity), seat mismatches \(seatMismatches), "
            + "stale events \(staleEvents), id gaps \(eventGaps), lost acknowledged bookings \(lostAcknowledged)"
    }

    /// Waits (up to `drainWithin`) for the calculator to turn every change into events, then checks.
    static func check(
        databaseURL: String, outcome: BookingGang.Outcome = BookingGang.Outcome(), drainWithin: Duration = .seconds(60)
    ) async throws -> InvariantCheck {
        try await StackDatabase.with(databaseURL) { database in
            func int(_ query: PostgresQuery) async throws -> Int { try await database.int(query) }
            let deadline = ContinuousClock.now + drainWithin
            while try await int("SELECT count(*)::int FROM changes") > 0 {
                guard ContinuousClock.now < deadline else { throw ResilienceFailure("changes were not drained within \(drainWithin)") }
                try await Task.sleep(for: .milliseconds(200))
            }
            var result = InvariantCheck()
            result.sessions = try await int("SELECT count(*)::int FROM sessions")
            result.events = try await int("SELECT count(*)::int FROM events")
            result.overCapacity = try await int("SELECT count(*)::int FROM sessions WHERE booked + held > capacity")
            result.seatMismatches = try await int(
                """
                SELECT count(*)::int FROM sessions s
                LEFT JOIN LATERAL (
                    SELECT coalesce(sum(seats) FILTER (WHERE status = 'confirmed'), 0) AS confirmed,
                           coalesce(sum(seats) FILTER (WHERE status = 'held'), 0) AS held
                    FROM bookings b WHERE b.session_id = s.id
                ) t ON true
                WHERE s.booked <> t.confirmed OR s.held <> t.held
                """)
            result.staleEvents = try await int(
                """
                WITH last AS (
                    SELECT DISTINCT ON (lower(payload->>'session_id')) lower(payload->>'session_id') AS session_id, payload
                    FROM events WHERE type = 'availability.updated'
                    ORDER BY lower(payload->>'session_id'), id DESC
                )
                SELECT count(*)::int FROM sessions s LEFT JOIN last l ON l.session_id = s.id::text
                WHERE l.payload IS NULL OR (l.payload->>'booked')::int <> s.booked OR (l.payload->>'held')::int <> s.held
                   OR (l.payload->>'capacity')::int <> s.capacity
                """)
            result.eventGaps = try await int(
                "SELECT count(*)::int FROM (SELECT id - lag(id) OVER (ORDER BY id) AS step FROM events) steps WHERE step <> 1")
            if !outcome.acknowledged.isEmpty {
                result.lostAcknowledged += try await int(
                    "SELECT count(*)::int FROM unnest(\(outcome.acknowledged)::uuid[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM bookings b WHERE b.id = a.id)"
                )
            }
            if !outcome.acknowledgedCancels.isEmpty {
                result.lostAcknowledged += try await int(
                    """
                    SELECT count(*)::int FROM unnest(\(outcome.acknowledgedCancels)::uuid[]) AS a(id)
                    WHERE NOT EXISTS (SELECT 1 FROM bookings b WHERE b.id = a.id AND b.status = 'cancelled')
                    """)
            }
            return result
        }
    }
}
