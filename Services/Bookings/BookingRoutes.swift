import Foundation
import HTTPTypes
import Hummingbird
import PostgresNIO
import Shared

/// `/api/v1/bookings`: book, hold, confirm, cancel and reschedule seats.
struct BookingRoutes: Sendable {
    let database: Database
    let ledger: SeatLedger
    let desk: BookingDesk
    let notifier: ChangeNotifier
    let holds: HoldPolicy
    let maxBodyBytes: Int
    let transaction: IdempotentTransaction

    func register(on group: RouterGroup<VacancyRequestContext>) {
        group.post("bookings") { request, context in
            let key = try IdempotencyStore.key(from: request, required: true)
            let body = try await StrictJSONBody.decode(CreateBookingRequest.self, from: request, limit: maxBodyBytes)
            try body.validate(holds: holds)
            let claim = try IdempotencyClaim(
                caller: context.caller ?? "anonymous", key: key ?? "", operation: "POST /api/v1/bookings", body: body
            )
            let outcome = try await desk.book(body, holdSeconds: body.holdLength(holds), claim: claim)
            switch outcome {
            case .booked(let stored):
                notifier.signal()
                return IdempotentTransaction.response(stored, replayed: false)
            case .replay(let stored):
                return IdempotentTransaction.response(stored, replayed: true)
            }
        }
        group.get("bookings/:id") { _, context in
            let id = try Parameter.uuid(context.parameters.get("id"), name: "id")
            let booking = try await database.withConnection { connection in try await ledger.load(id, on: connection) }
            return try JSONResponse.make(booking)
        }
        group.get("bookings") { request, _ in
            let query = request.uri.formQueryParameters
            let customerID = try CustomerID.query(query["customer_id"])
            let sessionID = try Parameter.optionalUUID(query["session_id"].map(String.init), name: "session_id")
            guard customerID != nil || sessionID != nil else {
                throw Problem.badParameter("customer_id", "give customer_id or session_id (or both)")
            }
            let status = try Parameter.enumeration(query["status"].map(String.init), name: "status", as: BookingStatus.self)
            let limit = try Parameter.int(query["limit"].map(String.init), name: "limit", default: 100, in: 1...1000)
            let rows = try await database.query(
                """
                SELECT \(unescaped: Booking.columns) FROM bookings
                WHERE (\(customerID)::text IS NULL OR customer_id = \(customerID))
                  AND (\(sessionID)::uuid IS NULL OR session_id = \(sessionID))
                  AND (\(status?.rawValue)::text IS NULL OR status = \(status?.rawValue))
                ORDER BY created_at DESC, id LIMIT \(limit)
                """
            )
            let bookings = try rows.map { try Booking(row: $0) }
            return try JSONResponse.make(BookingList(bookings: bookings, count: bookings.count))
        }
        group.post("bookings/:id/confirm") { request, context in
            let id = try Parameter.uuid(context.parameters.get("id"), name: "id")
            let claim = try IdempotencyClaim.optional(request, context: context, operation: "POST confirm \(id)")
            return try await transaction.respond(claim, status: .ok) { connection in
                try await ledger.confirm(id, on: connection)
            }
        }
        group.post("bookings/:id/cancel") { request, context in
            let id = try Parameter.uuid(context.parameters.get("id"), name: "id")
            let claim = try IdempotencyClaim.optional(request, context: context, operation: "POST cancel \(id)")
            return try await transaction.respond(claim, status: .ok) { connection in
                try await ledger.cancel(id, on: connection)
            }
        }
        group.post("bookings/:id/reschedule") { request, context in
            let id = try Parameter.uuid(context.parameters.get("id"), name: "id")
            let key = try IdempotencyStore.key(from: request, required: false)
            let body = try await StrictJSONBody.decode(RescheduleRequest.self, from: request, limit: maxBodyBytes)
            let claim = try key.map {
                try IdempotencyClaim(caller: context.caller ?? "anonymous", key: $0, operation: "POST reschedule \(id)", body: body)
            }
            return try await transaction.respond(claim, status: .ok) { connection in
                (try await ledger.reschedule(id, to: body.sessionID, on: connection), true)
            }
        }
    }
}

struct BookingList: Encodable {
    let bookings: [Booking]
    let count: Int
}
