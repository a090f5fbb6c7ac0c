import Foundation
import PostgresNIO
import Shared

/// Moves seats of existing bookings (confirm, cancel, reschedule, expire). Every seat count
/// changes only through a conditional UPDATE in the booking's own transaction, which also
/// writes the `changes` row the calculator consumes. New bookings: `BookingDesk`.
struct SeatLedger: Sendable {
    /// `bookings` columns qualified for statements that join other tables.
    static let qualifiedColumns = Booking.columns.split(separator: ",").map { "bookings.\($0.trimmingCharacters(in: .whitespaces))" }
        .joined(separator: ", ")

    /// The problem explaining why `seats` could not be taken on `sessionID`.
    func whyNotBookable(_ sessionID: UUID, seats: Int, field: String, on connection: PostgresConnection) async throws -> Problem {
        let rows = try await connection.query(
            "SELECT capacity, booked, held, status, starts_at <= now() FROM sessions WHERE id = \(sessionID)",
            logger: .vacancyQuiet
        ).collect()
        guard let row = rows.first else {
            return Problem.invalidField(field, "no session \(sessionID.uuidString.lowercased())")
        }
        let (capacity, booked, held, status, started) = try row.decode((Int, Int, Int, String, Bool).self)
        if let closed = Self.closed(status: status, started: started) { return closed }
        if seats > capacity {
            return Problem.invalidField("adult_count", "\(seats) seats is more than the session's capacity of \(capacity)")
        }
        let available = max(0, capacity - booked - held)
        return Problem.conflict(
            "sold-out", title: "Not enough seats",
            detail: "\(seats) seats requested, \(available) available.",
            extensions: ["available": .int(available), "requested": .int(seats)]
        )
    }

    /// Why a session with `status` takes no new seats or waiters, if it does not: it is
    /// cancelled or completed, or it has started.
    static func closed(status: String, started: Bool) -> Problem? {
        if status != SessionStatus.scheduled.rawValue {
            return Problem.conflict(
                "session-not-bookable", title: "Session not bookable", detail: "The session is \(status).",
                extensions: ["session_status": .string(status)]
            )
        }
        if started {
            return Problem.conflict("session-started", title: "Session already started", detail: "The session has already started.")
        }
        return nil
    }

    /// Turns a live hold into a confirmed booking; confirming a confirmed booking changes nothing.
    func confirm(_ id: UUID, on connection: PostgresConnection) async throws -> (Booking, changed: Bool) {
        let rows = try await connection.query(
            """
            WITH b AS (
                UPDATE bookings SET status = 'confirmed', expires_at = NULL, version = version + 1, updated_at = now()
                WHERE id = \(id) AND status = 'held' AND expires_at > now()
                RETURNING \(unescaped: Booking.columns)
            ), s AS (
                UPDATE sessions SET held = sessions.held - b.seats, booked = sessions.booked + b.seats,
                    version = sessions.version + 1, updated_at = now()
                FROM b WHERE sessions.id = b.session_id
            ), c AS (
                INSERT INTO changes (session_id, booking_id, kind) SELECT session_id, id, \(ChangeKind.bookingConfirmed.rawValue) FROM b
            )
            SELECT \(unescaped: Booking.columns) FROM b
            """,
            logger: .vacancyQuiet
        ).collect()
        if let row = rows.first { return (try Booking(row: row), true) }
        let current = try await load(id, on: connection)
        switch current.status {
        case .confirmed:
            return (current, false)
        case .held, .expired:
            throw Problem.conflict(
                "hold-expired", title: "Hold expired", detail: "The hold expired before it was confirmed; its seats were released.")
        case .cancelled:
            throw Problem.conflict("booking-cancelled", title: "Booking cancelled", detail: "A cancelled booking cannot be confirmed.")
        }
    }

    /// Cancels a hold or booking and returns its seats; cancelling again changes nothing.
    func cancel(_ id: UUID, on connection: PostgresConnection) async throws -> (Booking, changed: Bool) {
        let rows = try await connection.query(
            """
            WITH old AS (
                SELECT id, status FROM bookings WHERE id = \(id) AND status IN ('held', 'confirmed') FOR UPDATE
            ), b AS (
                UPDATE bookings SET status = 'cancelled', expires_at = NULL, version = bookings.version + 1, updated_at = now()
                FROM old WHERE bookings.id = old.id
                RETURNING \(unescaped: Self.qualifiedColumns), old.status AS previous_status
            ), s AS (
                UPDATE sessions SET
                    held = sessions.held - CASE WHEN b.previous_status = 'held' THEN b.seats ELSE 0 END,
                    booked = sessions.booked - CASE WHEN b.previous_status = 'confirmed' THEN b.seats ELSE 0 END,
                    version = sessions.version + 1, updated_at = now()
                FROM b WHERE sessions.id = b.session_id
            ), c AS (
                INSERT INTO changes (session_id, booking_id, kind) SELECT session_id, id, \(ChangeKind.bookingCancelled.rawValue) FROM b
            )
            SELECT \(unescaped: Booking.columns) FROM b
            """,
            logger: .vacancyQuiet
        ).collect()
        if let row = rows.first { return (try Booking(row: row), true) }
        return (try await load(id, on: connection), false)
    }

    /// Moves a live booking to another session: both sessions change or neither does.
    func reschedule(_ id: UUID, to target: UUID, on connection: PostgresConnection) async throws -> Booking {
        let rows = try await connection.query(
            "SELECT \(unescaped: Booking.columns), expires_at <= now() AS past_expiry FROM bookings WHERE id = \(id) FOR UPDATE",
            logger: .vacancyQuiet
        ).collect()
        guard let row = rows.first else { throw Problem.notFound("No booking \(id.uuidString.lowercased()).") }
        let booking = try Booking(row: row)
        let expired = try row.makeRandomAccess().column("past_expiry").decode(Bool?.self) ?? false
        switch booking.status {
        case .cancelled:
            throw Problem.conflict("booking-cancelled", title: "Booking cancelled", detail: "A cancelled booking cannot be rescheduled.")
        case .expired:
            throw Problem.conflict("hold-expired", title: "Hold expired", detail: "An expired hold cannot be rescheduled.")
        case .held where expired:
            throw Problem.conflict("hold-expired", title: "Hold expired", detail: "An expired hold cannot be rescheduled.")
        case .held, .confirmed:
            break
        }
        let offered = try await connection.query(
            "SELECT 1 FROM waitlist_entries WHERE booking_id = \(id) AND status = 'offered'", logger: .vacancyQuiet
        ).collect()
        if !offered.isEmpty {
            throw Problem.conflict(
                "offer-not-movable", title: "An offer cannot be rescheduled",
                detail: "This booking holds seats offered from the session's waitlist: confirm it to accept, or cancel it to decline.")
        }
        if booking.sessionID == target {
            throw Problem.invalidField("session_id", "the booking is already on this session")
        }
        let bookedDelta = booking.status == .confirmed ? booking.seats : 0
        let heldDelta = booking.status == .held ? booking.seats : 0
        // Lock both sessions in id order so two opposite reschedules cannot deadlock.
        try await connection.query(
            "SELECT id FROM sessions WHERE id IN (\(booking.sessionID), \(target)) ORDER BY id FOR UPDATE", logger: .vacancyQuiet
        ).collect()
        let taken = try await connection.query(
            """
            UPDATE sessions SET booked = booked + \(bookedDelta), held = held + \(heldDelta), version = version + 1, updated_at = now()
            WHERE id = \(target) AND status = 'scheduled' AND starts_at > now() AND booked + held + \(booking.seats) <= capacity
            RETURNING id
            """,
            logger: .vacancyQuiet
        ).collect()
        guard !taken.isEmpty else {
            throw try await whyNotBookable(target, seats: booking.seats, field: "session_id", on: connection)
        }
        let moved = try await connection.query(
            """
            WITH s AS (
                UPDATE sessions SET booked = booked - \(bookedDelta), held = held - \(heldDelta), version = version + 1, updated_at = now()
                WHERE id = \(booking.sessionID)
            ), c AS (
                INSERT INTO changes (session_id, booking_id, kind)
                VALUES (\(booking.sessionID), \(id), \(ChangeKind.bookingRescheduled.rawValue)), (\(target), \(id), \(ChangeKind.bookingRescheduled.rawValue))
            )
            UPDATE bookings SET session_id = \(target), version = version + 1, updated_at = now()
            WHERE id = \(id)
            RETURNING \(unescaped: Booking.columns)
            """,
            logger: .vacancyQuiet
        ).collect()
        guard let movedRow = moved.first else { throw Problem.internalError() }
        return try Booking(row: movedRow)
    }

    func load(_ id: UUID, on connection: PostgresConnection) async throws -> Booking {
        let rows = try await connection.query(
            "SELECT \(unescaped: Booking.columns) FROM bookings WHERE id = \(id)", logger: .vacancyQuiet
        ).collect()
        guard let row = rows.first else { throw Problem.notFound("No booking \(id.uuidString.lowercased()).") }
        return try Booking(row: row)
    }

    /// Expires holds whose time is up and returns their seats; safe to run in several
    /// instances at once (`SKIP LOCKED`). Returns how many holds expired.
    func expireHolds(limit: Int = 500, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.query(
            """
            WITH due AS (
                SELECT id FROM bookings WHERE status = 'held' AND expires_at <= now()
                ORDER BY expires_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
            ), b AS (
                UPDATE bookings SET status = 'expired', version = bookings.version + 1, updated_at = now()
                FROM due WHERE bookings.id = due.id
                RETURNING bookings.id, bookings.session_id, bookings.seats
            ), s AS (
                UPDATE sessions SET held = sessions.held - x.seats, version = sessions.version + 1, updated_at = now()
                FROM (SELECT session_id, sum(seats)::int AS seats FROM b GROUP BY session_id) x
                WHERE sessions.id = x.session_id
            ), c AS (
                INSERT INTO changes (session_id, booking_id, kind) SELECT session_id, id, \(ChangeKind.bookingExpired.rawValue) FROM b
            )
            SELECT count(*)::int FROM b
            """,
            logger: .vacancyQuiet
        ).collect()
        return try rows.first?.decode(Int.self) ?? 0
    }
}
