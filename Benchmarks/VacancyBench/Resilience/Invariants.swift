import Foundation
import Logging
import PostgresNIO
import Shared
import TestSupport

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
    /// The first few of those, so a failure can be followed into the logs.
    var lostIDs: [String] = []
    var events = 0
    var waitlist = WaitlistCheck()

    var holds: Bool {
        overCapacity == 0 && seatMismatches == 0 && staleEvents == 0 && eventGaps == 0 && lostAcknowledged == 0 && waitlist.holds
    }

    var summary: String {
        "sessions \(sessions): over capacity \(overCapacity), seat mismatches \(seatMismatches), "
            + "stale events \(staleEvents), id gaps \(eventGaps), lost acknowledged bookings \(lostAcknowledged)"
            + (lostIDs.isEmpty ? "" : " (\(lostIDs.joined(separator: ", ")))")
            + (waitlist.entries > 0 ? "; \(waitlist.summary)" : "")
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
                """
                SELECT count(*)::int FROM (SELECT id, id - lag(id) OVER (ORDER BY id) AS step FROM events) steps
                WHERE step <> 1 AND id NOT IN (SELECT first_id FROM log_epochs)
                """)
            var lost: [String] = []
            if !outcome.acknowledged.isEmpty {
                lost += try await database.rows(
                    "SELECT a.id::text FROM unnest(\(outcome.acknowledged)::uuid[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM bookings b WHERE b.id = a.id)"
                ).map { try $0.decode(String.self) }
            }
            if !outcome.acknowledgedCancels.isEmpty {
                lost += try await database.rows(
                    """
                    SELECT a.id::text || ' (cancel)' FROM unnest(\(outcome.acknowledgedCancels)::uuid[]) AS a(id)
                    WHERE NOT EXISTS (SELECT 1 FROM bookings b WHERE b.id = a.id AND b.status = 'cancelled')
                    """
                ).map { try $0.decode(String.self) }
            }
            result.lostAcknowledged = lost.count
            result.lostIDs = Array(lost.prefix(5))
            result.waitlist = try await WaitlistCheck.check(database, outcome: outcome)
            return result
        }
    }
}

/// The line's rules (DESIGN.md, "Waitlists and offers"), from the tables and the log's
/// `waitlist.updated` events replayed in order.
struct WaitlistCheck: Codable {
    var entries = 0
    var offers = 0
    /// Entries still waiting that fit their open session's free seats.
    var fittingLeftWaiting = 0
    /// Sessions whose `waiting`/`waiting_seats` differ from their waiting entries.
    var countMismatches = 0
    /// Offers whose booking is missing, someone else's or of other seats, or an `offered` entry whose booking is not held.
    var offerMismatches = 0
    /// Entries offered out of turn, told an impossible sequence of statuses, offered twice, or last told a status they do not have.
    var lineJumps = 0
    var badSequences = 0
    var offeredTwice = 0
    var staleStatuses = 0
    /// Joins answered 201 that are not there, or leaves answered `left` or `declined` that did not stick.
    var lost = 0
    /// The first few of those, so a failure can be followed into the logs.
    var lostIDs: [String] = []

    var holds: Bool {
        fittingLeftWaiting == 0 && countMismatches == 0 && offerMismatches == 0 && lineJumps == 0 && badSequences == 0
            && offeredTwice == 0 && staleStatuses == 0 && lost == 0
    }

    var summary: String {
        "waitlist entries \(entries), offers \(offers): fitting left waiting \(fittingLeftWaiting), count mismatches \(countMismatches), "
            + "offer mismatches \(offerMismatches), out of turn \(lineJumps), bad sequences \(badSequences), offered twice \(offeredTwice), "
            + "stale statuses \(staleStatuses), lost joins or leaves \(lost)"
            + (lostIDs.isEmpty ? "" : " (\(lostIDs.joined(separator: ", ")))")
    }

    static func check(_ database: StackDatabase, outcome: BookingGang.Outcome) async throws -> WaitlistCheck {
        func int(_ query: PostgresQuery) async throws -> Int { try await database.int(query) }
        var result = WaitlistCheck()
        result.fittingLeftWaiting = try await int(
            """
            SELECT count(*)::int FROM waitlist_entries w JOIN sessions s ON s.id = w.session_id
            WHERE w.status = 'waiting' AND s.status = 'scheduled' AND s.starts_at > now() AND w.seats <= s.capacity - s.booked - s.held
            """)
        result.countMismatches = try await int(
            """
            SELECT count(*)::int FROM sessions s
            LEFT JOIN LATERAL (
                SELECT count(*)::int AS waiting, coalesce(sum(seats), 0)::int AS seats FROM waitlist_entries w
                WHERE w.session_id = s.id AND w.status = 'waiting'
            ) t ON true
            WHERE s.waiting <> t.waiting OR s.waiting_seats <> t.seats
            """)
        result.offerMismatches = try await int(
            """
            SELECT count(*)::int FROM waitlist_entries w LEFT JOIN bookings b ON b.id = w.booking_id
            WHERE w.status IN ('offered', 'accepted', 'declined')
              AND (b.id IS NULL OR b.customer_id <> w.customer_id OR b.seats <> w.seats OR b.session_id <> w.session_id
                   OR (w.status = 'offered' AND b.status <> 'held') OR (w.status = 'declined' AND b.status <> 'cancelled'))
            """)
        var entries: [UUID: WaitlistReplay.Entry] = [:]
        var statusOf: [UUID: String] = [:]
        for row in try await database.rows("SELECT id, session_id, line, seats, status FROM waitlist_entries") {
            let (id, session, line, seats, status) = try row.decode((UUID, UUID, Int64, Int, String).self)
            entries[id] = WaitlistReplay.Entry(session: session, line: line, seats: seats)
            statusOf[id] = status
        }
        result.entries = entries.count
        var replay = WaitlistReplay(entries: entries)
        let told = try await database.rows(
            "SELECT payload->>'waitlist_id', payload->>'status' FROM events WHERE type = 'waitlist.updated' ORDER BY id")
        for (id, status) in try told.map({ try $0.decode((String, String).self) }) {
            guard let uuid = UUID(uuidString: id) else { throw ResilienceFailure("waitlist.updated with waitlist_id \(id)") }
            replay.apply(uuid, status: status)
        }
        result.offers = replay.offers
        result.lineJumps = replay.lineJumps.count + replay.unknown
        result.badSequences = replay.badSequences.count
        result.offeredTwice = replay.offeredTwice
        // Every entry told its status (none missing), the one it has.
        result.staleStatuses = statusOf.filter { replay.lastStatus[$0.key] != $0.value }.count
        var lost: [String] = []
        if !outcome.joined.isEmpty {
            lost += try await database.rows(
                "SELECT j.id::text FROM unnest(\(outcome.joined)::uuid[]) AS j(id) WHERE NOT EXISTS (SELECT 1 FROM waitlist_entries w WHERE w.id = j.id)"
            ).map { try $0.decode(String.self) }
        }
        if !outcome.leftOrDeclined.isEmpty {
            // `left` and `declined` are final: a leave that was answered so and is not so was lost.
            lost += try await database.rows(
                """
                SELECT l.id::text || ' (leave, now ' || coalesce(w.status, 'missing') || ')' FROM unnest(\(outcome.leftOrDeclined)::uuid[]) AS l(id)
                LEFT JOIN waitlist_entries w ON w.id = l.id WHERE w.status IS DISTINCT FROM 'left' AND w.status IS DISTINCT FROM 'declined'
                """
            ).map { try $0.decode(String.self) }
        }
        result.lost = lost.count
        result.lostIDs = Array(lost.prefix(5))
        return result
    }
}
