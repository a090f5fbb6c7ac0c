import Foundation
import Hummingbird
import PostgresNIO
import Shared

/// The waitlists of full sessions: join, look, leave (DESIGN.md, "Waitlists and offers").
struct WaitlistRoutes: Sendable {
    let database: Database
    let line: WaitingLine
    let transaction: IdempotentTransaction
    let offers: OfferPolicy
    let maxBodyBytes: Int

    func register(on group: RouterGroup<VacancyRequestContext>) {
        group.post("sessions/:id/waitlist") { request, context in
            let sessionID = try Parameter.uuid(context.parameters.get("id"), name: "id")
            let key = try IdempotencyStore.key(from: request, required: true)
            let body = try await StrictJSONBody.decode(JoinWaitlistRequest.self, from: request, limit: maxBodyBytes)
            try body.validate(offers: offers)
            let claim = try IdempotencyClaim(
                caller: context.caller ?? "anonymous", key: key ?? "", operation: "POST waitlist \(sessionID)", body: body)
            let offerSeconds = body.offerSeconds ?? offers.defaultSeconds
            return try await transaction.respond(claim, status: .created) { connection in
                (try await line.join(body, session: sessionID, offerSeconds: offerSeconds, on: connection), true)
            }
        }
        group.get("waitlist/:id") { _, context in
            let id = try Parameter.uuid(context.parameters.get("id"), name: "id")
            return try JSONResponse.make(try await database.withConnection { try await line.load(id, on: $0) })
        }
        group.get("sessions/:id/waitlist") { request, context in
            let sessionID = try Parameter.uuid(context.parameters.get("id"), name: "id")
            let status = try Parameter.enumeration(
                request.uri.formQueryParameters["status"].map(String.init), name: "status", as: WaitlistStatus.self)
            let sessions = try await database.query("SELECT id FROM sessions WHERE id = \(sessionID)")
            guard !sessions.isEmpty else { throw Problem.notFound("No session \(sessionID.uuidString.lowercased()).") }
            let rows = try await database.query(
                """
                \(unescaped: WaitlistEntry.select)
                WHERE w.session_id = \(sessionID) AND (\(status?.rawValue)::text IS NULL OR w.status = \(status?.rawValue))
                ORDER BY w.line
                """
            )
            let entries = try rows.map { try WaitlistEntry(row: $0) }
            return try JSONResponse.make(WaitlistPage(entries: entries, count: entries.count))
        }
        group.get("waitlist") { request, _ in
            let query = request.uri.formQueryParameters
            guard let customerID = try CustomerID.query(query["customer_id"]) else {
                throw Problem.badParameter("customer_id", "is required")
            }
            let rows = try await database.query(
                "\(unescaped: WaitlistEntry.select) WHERE w.customer_id = \(customerID) ORDER BY w.joined_at DESC, w.id LIMIT 1000")
            let entries = try rows.map { try WaitlistEntry(row: $0) }
            return try JSONResponse.make(WaitlistPage(entries: entries, count: entries.count))
        }
        group.post("waitlist/:id/leave") { request, context in
            let id = try Parameter.uuid(context.parameters.get("id"), name: "id")
            let claim = try IdempotencyClaim.optional(request, context: context, operation: "POST leave \(id)")
            return try await transaction.respond(claim, status: .ok) { connection in
                try await line.leave(id, on: connection)
            }
        }
    }
}

struct WaitlistPage: Encodable {
    let entries: [WaitlistEntry]
    let count: Int
}
