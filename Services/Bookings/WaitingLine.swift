import Foundation
import PostgresNIO
import Shared

/// Joins and leaves the line of a full session. Offers are made by the database, in the
/// transaction that frees the seats (the `sessions_offer_freed_seats` trigger), and end
/// with their booking (`bookings_end_offer`); this type only queues and unqueues. Every
/// statement that changes a line locks the session's row first, as the offering trigger
/// does, so joins, leaves and offers on one session take turns.
struct WaitingLine: Sendable {
    let ledger: SeatLedger

    /// Puts the customer in line, or explains why not (seats free, already waiting, session not open).
    func join(_ request: JoinWaitlistRequest, session sessionID: UUID, offerSeconds: Int, on connection: PostgresConnection) async throws
        -> WaitlistEntry
    {
        let rows = try await connection.query(
            "SELECT capacity, booked, held, status, starts_at <= now() FROM sessions WHERE id = \(sessionID) FOR UPDATE",
            logger: .vacancyQuiet
        ).collect()
        guard let row = rows.first else { throw Problem.notFound("No session \(sessionID.uuidString.lowercased()).") }
        let (capacity, booked, held, status, started) = try row.decode((Int, Int, Int, String, Bool).self)
        if let closed = SeatLedger.closed(status: status, started: started) { throw closed }
        if request.seats > capacity {
            throw Problem.invalidField("adult_count", "\(request.seats) seats is more than the session's capacity of \(capacity)")
        }
        let available = max(0, capacity - booked - held)
        if request.seats <= available {
            throw Problem.conflict(
                "seats-available", title: "Seats are available",
                detail: "\(available) seats are free, enough for \(request.seats): book them instead of joining the waitlist.",
                extensions: ["available": .int(available), "requested": .int(request.seats)]
            )
        }
        let waiting = try await connection.query(
            """
            SELECT id FROM waitlist_entries
            WHERE session_id = \(sessionID) AND customer_id = \(request.customerID) AND status IN ('waiting', 'offered')
            """,
            logger: .vacancyQuiet
        ).collect()
        if let existing = try waiting.first?.decode(UUID.self) {
            throw Problem.conflict(
                "already-waiting", title: "Already on the waitlist",
                detail: "Customer \(request.customerID) is already on this session's waitlist.",
                extensions: ["waitlist_id": .string(existing.uuidString.lowercased())]
            )
        }
        let id = UUID.timeOrdered(now: Date())
        try await connection.query(
            """
            WITH w AS (
                INSERT INTO waitlist_entries (id, session_id, customer_id, adult_count, child_count, seats, offer_seconds)
                VALUES (\(id), \(sessionID), \(request.customerID), \(request.adultCount), \(request.childCount), \(request.seats), \(offerSeconds))
                RETURNING id, session_id, seats
            ), s AS (
                UPDATE sessions SET waiting = sessions.waiting + 1, waiting_seats = sessions.waiting_seats + w.seats,
                    version = sessions.version + 1, updated_at = now()
                FROM w WHERE sessions.id = w.session_id
            )
            INSERT INTO changes (session_id, waitlist_id, kind) SELECT session_id, id, \(ChangeKind.waitlistJoined.rawValue) FROM w
            """,
            logger: .vacancyQuiet
        )
        return try await load(id, on: connection)
    }

    /// Takes the entry out of line; an offered entry declines its offer (its seats go on down
    /// the line). Leaving an entry that has already ended changes nothing.
    func leave(_ id: UUID, on connection: PostgresConnection) async throws -> (WaitlistEntry, changed: Bool) {
        let entry = try await load(id, on: connection)
        switch entry.status {
        case .offered:
            guard let offer = entry.offer else { throw Problem.internalError() }
            let (_, changed) = try await ledger.cancel(offer.bookingID, on: connection)
            return (try await load(id, on: connection), changed)
        case .waiting:
            try await connection.query("SELECT id FROM sessions WHERE id = \(entry.sessionID) FOR UPDATE", logger: .vacancyQuiet)
            let left = try await connection.query(
                """
                WITH w AS (
                    UPDATE waitlist_entries SET status = 'left', version = version + 1, updated_at = now()
                    WHERE id = \(id) AND status = 'waiting'
                    RETURNING id, session_id, seats
                ), s AS (
                    UPDATE sessions SET waiting = sessions.waiting - 1, waiting_seats = sessions.waiting_seats - w.seats,
                        version = sessions.version + 1, updated_at = now()
                    FROM w WHERE sessions.id = w.session_id
                ), c AS (
                    INSERT INTO changes (session_id, waitlist_id, kind) SELECT session_id, id, \(ChangeKind.waitlistLeft.rawValue) FROM w
                )
                SELECT count(*)::int FROM w
                """,
                logger: .vacancyQuiet
            ).collect()
            if try left.first?.decode(Int.self) == 1 { return (try await load(id, on: connection), true) }
            // Offered between the read and the lock: leaving now declines that offer.
            return try await leave(id, on: connection)
        case .accepted, .declined, .expired, .left:
            return (entry, false)
        }
    }

    /// Expires the waiting entries of sessions that have started (nothing can be offered any
    /// more); their offers end with their holds. Safe beside other instances (`SKIP LOCKED`).
    /// Returns how many entries it expired.
    static func closeStarted(limit: Int = 100, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.query(
            """
            WITH started AS (
                SELECT id FROM sessions WHERE waiting > 0 AND starts_at <= now() ORDER BY starts_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
            ), w AS (
                UPDATE waitlist_entries SET status = 'expired', version = waitlist_entries.version + 1, updated_at = now()
                FROM started WHERE waitlist_entries.session_id = started.id AND waitlist_entries.status = 'waiting'
                RETURNING waitlist_entries.id, waitlist_entries.session_id
            ), s AS (
                UPDATE sessions SET waiting = 0, waiting_seats = 0, version = sessions.version + 1, updated_at = now()
                FROM started WHERE sessions.id = started.id
            ), c AS (
                INSERT INTO changes (session_id, waitlist_id, kind) SELECT session_id, id, \(ChangeKind.waitlistExpired.rawValue) FROM w
            )
            SELECT count(*)::int FROM w
            """,
            logger: .vacancyQuiet
        ).collect()
        return try rows.first?.decode(Int.self) ?? 0
    }

    func load(_ id: UUID, on connection: PostgresConnection) async throws -> WaitlistEntry {
        let rows = try await connection.query("\(unescaped: WaitlistEntry.select) WHERE w.id = \(id)", logger: .vacancyQuiet).collect()
        guard let row = rows.first else { throw Problem.notFound("No waitlist entry \(id.uuidString.lowercased()).") }
        return try WaitlistEntry(row: row)
    }
}
