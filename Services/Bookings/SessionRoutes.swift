import Foundation
import HTTPTypes
import Hummingbird
import Shared

/// `/api/v1/sessions`: create, list, read and change sessions.
struct SessionRoutes: Sendable {
    let store: SessionStore
    let notifier: ChangeNotifier
    let maxBodyBytes: Int
    /// `VACANCY_TIME_ZONE`: for sessions created without one, and the day `from` defaults to.
    let timeZone: String

    func register(on group: RouterGroup<VacancyRequestContext>) {
        group.post("sessions") { request, _ in
            var body = try await StrictJSONBody.decode(CreateSessionRequest.self, from: request, limit: maxBodyBytes)
            try body.validate(defaultTimeZone: timeZone)
            let session = try await store.create(body)
            notifier.signal()
            return try JSONResponse.make(
                session, status: .created, headers: [.location: "/api/v1/sessions/\(session.id.uuidString.lowercased())"])
        }
        group.get("sessions") { request, _ in
            let query = request.uri.formQueryParameters
            let today = VenueTime.day(of: Date(), in: VenueTime.zone(timeZone))
            let from = try Parameter.day(query["from"].map(String.init), name: "from") ?? today
            let to = try Parameter.day(query["to"].map(String.init), name: "to") ?? from.adding(days: 31)
            guard from <= to else { throw Problem.badParameter("to", "must not be before from") }
            guard to.daysSinceEpoch - from.daysSinceEpoch <= 366 else {
                throw Problem.badParameter("to", "must be at most 366 days after from")
            }
            let filter = SessionStore.Filter(
                from: from,
                to: to,
                courseType: try Parameter.label(query["course_type"].map(String.init), name: "course_type"),
                location: try Parameter.label(query["location"].map(String.init), name: "location"),
                status: try Parameter.enumeration(query["status"].map(String.init), name: "status", as: SessionStatus.self),
                limit: try Parameter.int(query["limit"].map(String.init), name: "limit", default: 500, in: 1...2000)
            )
            let sessions = try await store.list(filter)
            return try JSONResponse.make(SessionList(sessions: sessions, count: sessions.count))
        }
        group.get("sessions/:id") { _, context in
            let id = try Parameter.uuid(context.parameters.get("id"), name: "id")
            guard let session = try await store.get(id) else { throw Problem.notFound("No session \(id.uuidString.lowercased()).") }
            return try JSONResponse.make(session)
        }
        group.patch("sessions/:id") { request, context in
            let id = try Parameter.uuid(context.parameters.get("id"), name: "id")
            let body = try await StrictJSONBody.decode(PatchSessionRequest.self, from: request, limit: maxBodyBytes)
            try body.validateShape()
            let session = try await store.patch(id, body)
            notifier.signal()
            return try JSONResponse.make(session)
        }
    }
}

struct SessionList: Encodable {
    let sessions: [Session]
    let count: Int
}
