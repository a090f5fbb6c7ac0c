import Foundation
import PostgresNIO
import Shared

/// Takes new bookings: the idempotency check, the conditional seat update, the booking
/// row, its `changes` row and the stored answer, all in one statement (one implicit
/// transaction, a prepared plan), answered once it has committed (`awaitCommit`). The
/// answer is encoded before the statement runs — the row's id and times come from here —
/// so what is stored is what is sent.
struct BookingDesk: Sendable {
    let database: Database
    let ledger: SeatLedger
    let idempotency: IdempotencyStore

    enum Outcome: Sendable {
        case booked(StoredResponse)
        case replay(StoredResponse)
    }

    func book(_ request: CreateBookingRequest, holdSeconds: Int?, claim: IdempotencyClaim) async throws -> Outcome {
        let now = Date()
        let booking = Booking(
            id: UUID.timeOrdered(now: now), sessionID: request.sessionID, customerID: request.customerID,
            adultCount: request.adultCount, childCount: request.childCount, seats: request.seats,
            status: holdSeconds == nil ? .confirmed : .held,
            expiresAt: holdSeconds.map { now.addingTimeInterval(Double($0)) },
            version: 1, createdAt: now, updatedAt: now
        )
        let body = String(decoding: try JSONCoding.encoder.encode(booking), as: UTF8.self)
        let statement = InsertBooking(
            booking: booking, claim: claim, ttlHours: idempotency.ttlHours, responseBody: body
        )
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await run(statement, booking: booking, body: body)
            } catch let error as PSQLError where error.sqlState == "23505" && attempt < 3 {
                // The key was stored by a request that committed after this one's snapshot,
                // or an expired record is still there: clear the expired one, look again.
                try await database.withConnection { connection in try await idempotency.forgetExpired(claim, on: connection) }
            }
        }
    }

    private func run(_ statement: InsertBooking, booking: Booking, body: String) async throws -> Outcome {
        try await database.withConnection { connection in
            var result: InsertBooking.Row?
            for try await row in try await connection.execute(statement, logger: .vacancyQuiet) { result = row }
            // Answered only once the booking has committed (and reached a synchronous standby).
            try await connection.awaitCommit(logger: .vacancyQuiet)
            guard let (acquired, booked, sameRequest, priorStatus, priorBody, priorLocation) = result else { throw Problem.internalError() }
            if booked { return .booked(StoredResponse(status: 201, body: body, location: Self.location(of: booking.id))) }
            if let sameRequest {
                return .replay(
                    try IdempotencyStore.replay(
                        sameRequest: sameRequest, status: priorStatus, body: priorBody,
                        location: priorLocation.map { Self.location(of: $0) }
                    )
                )
            }
            guard acquired else { throw IdempotencyStore.inFlight() }
            throw try await ledger.whyNotBookable(booking.sessionID, seats: booking.seats, field: "session_id", on: connection)
        }
    }
}

extension BookingDesk {
    static func location(of id: UUID) -> String {
        "/api/v1/bookings/\(id.uuidString.lowercased())"
    }
}

/// The one statement behind `POST /api/v1/bookings`.
struct InsertBooking: PostgresPreparedStatement {
    typealias Row = (Bool, Bool, Bool?, Int?, String?, UUID?)
    /// Named once (the protocol's default reflects the type's name on every execution).
    static let name = "vacancy_insert_booking"

    static let sql = """
        WITH lock AS (
            SELECT pg_try_advisory_xact_lock($17) AS acquired
        ), prior AS (
            SELECT fingerprint = $4 AS same_request, status_code, response_body, booking_id
            FROM idempotency_keys
            WHERE caller = $2 AND key = $3 AND \(IdempotencyStore.isLive(ttlHours: "$5"))
        ), go AS (
            SELECT 1 FROM lock WHERE acquired AND NOT EXISTS (SELECT 1 FROM prior)
        ), s AS (
            UPDATE sessions
            SET booked = booked + $6::int, held = held + $7::int, version = version + 1, updated_at = now()
            WHERE id = $1 AND status = 'scheduled' AND starts_at > now()
              AND booked + held + $6::int + $7::int <= capacity AND EXISTS (SELECT 1 FROM go)
            RETURNING id
        ), b AS (
            INSERT INTO bookings (id, session_id, customer_id, adult_count, child_count, seats, status, expires_at, created_at, updated_at)
            SELECT $8, s.id, $9, $10::int, $11::int, $10::int + $11::int, $12, $13::timestamptz, $14, $14 FROM s
            RETURNING id, session_id
        ), c AS (
            INSERT INTO changes (session_id, booking_id, kind) SELECT session_id, id, $16::text FROM b
        ), k AS (
            INSERT INTO idempotency_keys (caller, key, fingerprint, status_code, response_body, booking_id)
            SELECT $2, $3, $4, 201, $15, b.id FROM b
        )
        SELECT lock.acquired, EXISTS (SELECT 1 FROM b), prior.same_request, prior.status_code, prior.response_body, prior.booking_id
        FROM lock LEFT JOIN prior ON true
        """

    let booking: Booking
    let claim: IdempotencyClaim
    let ttlHours: Int
    let responseBody: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 17)
        bindings.append(booking.sessionID)
        bindings.append(claim.caller)
        bindings.append(claim.key)
        bindings.append(claim.fingerprint)
        bindings.append(ttlHours)
        bindings.append(booking.status == .held ? 0 : booking.seats)
        bindings.append(booking.status == .held ? booking.seats : 0)
        bindings.append(booking.id)
        bindings.append(booking.customerID)
        bindings.append(booking.adultCount)
        bindings.append(booking.childCount)
        bindings.append(booking.status.rawValue)
        if let expiresAt = booking.expiresAt { bindings.append(expiresAt) } else { bindings.appendNull() }
        bindings.append(booking.createdAt)
        bindings.append(responseBody)
        bindings.append(ChangeKind.bookingCreated.rawValue)
        bindings.append(claim.lockID)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode(Row.self)
    }
}
