import Foundation
import PostgresNIO
import Shared

/// Sessions in PostgreSQL: creating, reading and changing them, with a `changes` row for
/// every change the calculator must see.
struct SessionStore: Sendable {
    let database: Database

    struct Filter: Sendable {
        /// First and last local day (each session's `date` in its own zone).
        var from: CalendarDay
        var to: CalendarDay
        var courseType: String?
        var location: String?
        var status: SessionStatus?
        var limit: Int
    }

    func create(_ request: CreateSessionRequest) async throws -> Session {
        let id = UUID.timeOrdered()
        let rows = try await database.write(
            """
            WITH s AS (
                INSERT INTO sessions (id, course_type, location, starts_at, ends_at, time_zone, capacity, notes)
                VALUES (\(id), \(request.courseType), \(request.location), \(request.startsAt), \(request.endsAt), \(request.timeZone ?? "UTC"),
                        \(request.capacity), \(request.notes))
                RETURNING \(unescaped: Session.columns)
            ), c AS (
                INSERT INTO changes (session_id, kind) SELECT id, \(ChangeKind.sessionCreated.rawValue) FROM s
            )
            SELECT \(unescaped: Session.columns) FROM s
            """
        )
        guard let row = rows.first else { throw Problem.internalError() }
        return try Session(row: row)
    }

    func get(_ id: UUID) async throws -> Session? {
        try await database.query("SELECT \(unescaped: Session.columns) FROM sessions WHERE id = \(id)").first.map { try Session(row: $0) }
    }

    func list(_ filter: Filter) async throws -> [Session] {
        try await database.query(
            """
            SELECT \(unescaped: Session.columns) FROM sessions
            WHERE local_date BETWEEN \(filter.from.description)::date AND \(filter.to.description)::date
              AND (\(filter.courseType)::text IS NULL OR course_type = \(filter.courseType))
              AND (\(filter.location)::text IS NULL OR location = \(filter.location))
              AND (\(filter.status?.rawValue)::text IS NULL OR status = \(filter.status?.rawValue))
            ORDER BY starts_at, id
            LIMIT \(filter.limit)
            """
        ).map { try Session(row: $0) }
    }

    /// Applies a patch atomically. Capacity below the seats taken is refused; cancelling
    /// cancels every live booking of the session and returns their seats.
    func patch(_ id: UUID, _ patch: PatchSessionRequest) async throws -> Session {
        try await database.transaction { connection in
            let rows = try await connection.query(
                "SELECT \(unescaped: Session.columns) FROM sessions WHERE id = \(id) FOR UPDATE", logger: .vacancyQuiet
            ).collect()
            guard let current = try rows.first.map({ try Session(row: $0) }) else {
                throw Problem.notFound("No session \(id.uuidString.lowercased()).")
            }
            var errors = FieldErrors()
            errors.times(startsAt: patch.startsAt ?? current.startsAt, endsAt: patch.endsAt ?? current.endsAt)
            try errors.check()
            let status = patch.status ?? current.status
            if status != current.status && current.status != .scheduled {
                throw Problem.conflict(
                    "invalid-status-change", title: "Status change not allowed",
                    detail: "A \(current.status.rawValue) session cannot become \(status.rawValue)."
                )
            }
            let cancelling = status == .cancelled && current.status != .cancelled
            let capacity = patch.capacity ?? current.capacity
            if !cancelling && capacity < current.booked + current.held {
                throw Problem.conflict(
                    "capacity-below-booked", title: "Capacity below seats taken",
                    detail: "Capacity \(capacity) is below the \(current.booked + current.held) seats already booked or held.",
                    extensions: ["booked": .int(current.booked), "held": .int(current.held)]
                )
            }
            if cancelling {
                // The line closes first, so the offers' bookings cancelled next end as expired, not declined.
                try await connection.query(
                    """
                    WITH w AS (
                        UPDATE waitlist_entries SET status = 'expired', version = version + 1, updated_at = now()
                        WHERE session_id = \(id) AND status IN ('waiting', 'offered')
                        RETURNING id, session_id
                    )
                    INSERT INTO changes (session_id, waitlist_id, kind) SELECT session_id, id, \(ChangeKind.waitlistExpired.rawValue) FROM w
                    """,
                    logger: .vacancyQuiet
                )
                try await connection.query(
                    """
                    WITH b AS (
                        UPDATE bookings SET status = 'cancelled', expires_at = NULL, version = version + 1, updated_at = now()
                        WHERE session_id = \(id) AND status IN ('held', 'confirmed')
                        RETURNING id, session_id
                    )
                    INSERT INTO changes (session_id, booking_id, kind) SELECT session_id, id, \(ChangeKind.bookingCancelled.rawValue) FROM b
                    """,
                    logger: .vacancyQuiet
                )
            }
            let updated = try await connection.query(
                """
                WITH s AS (
                    UPDATE sessions SET
                        capacity = \(capacity), status = \(status.rawValue), notes = \(patch.notes ?? current.notes),
                        starts_at = \(patch.startsAt ?? current.startsAt), ends_at = \(patch.endsAt ?? current.endsAt),
                        time_zone = \(patch.timeZone ?? current.timeZone),
                        booked = CASE WHEN \(cancelling) THEN 0 ELSE booked END,
                        held = CASE WHEN \(cancelling) THEN 0 ELSE held END,
                        waiting = CASE WHEN \(cancelling) THEN 0 ELSE waiting END,
                        waiting_seats = CASE WHEN \(cancelling) THEN 0 ELSE waiting_seats END,
                        version = version + 1, updated_at = now()
                    WHERE id = \(id)
                    RETURNING \(unescaped: Session.columns)
                ), c AS (
                    INSERT INTO changes (session_id, kind) SELECT id, \(ChangeKind.sessionUpdated.rawValue) FROM s
                )
                SELECT \(unescaped: Session.columns) FROM s
                """,
                logger: .vacancyQuiet
            ).collect()
            guard let row = updated.first else { throw Problem.internalError() }
            return try Session(row: row)
        }
    }
}
