import Foundation
import Hummingbird
import PostgresNIO
import Shared

/// Public reads of seat availability. Every answer carries `last_event_id` (the log head
/// it reflects: subscribe from there and nothing is missed) and an ETag over its content.
struct AvailabilityRoutes: Sendable {
    let database: Database
    let lowThreshold: Int

    func register(on router: Router<VacancyRequestContext>) {
        let group = router.group("api/v1/availability")
        group.get { request, _ in
            let query = request.uri.queryParameters
            let day = try Parameter.day(query["date"].map(String.init), name: "date") ?? CalendarDay(date: Date())
            let filter = SessionFilter(
                from: day.start, to: day.adding(days: 1).start,
                sessionID: try Parameter.optionalUUID(query["session_id"].map(String.init), name: "session_id"),
                courseType: try Parameter.label(query["course_type"].map(String.init), name: "course_type"),
                location: try Parameter.label(query["location"].map(String.init), name: "location")
            )
            let (head, sessions) = try await read(filter)
            return try Self.answer(request, lastEventID: head, content: ["date": .string(day.description)], sessions: sessions)
        }
        group.get("sessions/:id") { request, context in
            let id = try Parameter.uuid(context.parameters.get("id"), name: "id")
            let (head, sessions) = try await read(SessionFilter(sessionID: id))
            guard let session = sessions.first else { throw Problem.notFound("No session \(id.uuidString.lowercased()).") }
            let bytes = try JSONCoding.encoder.encode(session)
            return try ETag.respond(to: request, content: session) { _ in Self.withHead(bytes, head) }
        }
    }

    struct SessionFilter: Sendable {
        var from: Date?
        var to: Date?
        var sessionID: UUID?
        var courseType: String?
        var location: String?
    }

    /// Sessions and the event log head from one snapshot.
    func read(_ filter: SessionFilter) async throws -> (Int64, [SessionAvailability]) {
        let rows = try await database.query(
            """
            WITH head AS (SELECT coalesce(max(id), 0)::bigint AS last FROM events)
            SELECT head.last, \(unescaped: Session.columns.split(separator: ",").map { "s." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", "))
            FROM head LEFT JOIN sessions s ON
                (\(filter.from)::timestamptz IS NULL OR s.starts_at >= \(filter.from))
                AND (\(filter.to)::timestamptz IS NULL OR s.starts_at < \(filter.to))
                AND (\(filter.sessionID)::uuid IS NULL OR s.id = \(filter.sessionID))
                AND (\(filter.courseType)::text IS NULL OR s.course_type = \(filter.courseType))
                AND (\(filter.location)::text IS NULL OR s.location = \(filter.location))
            ORDER BY s.starts_at, s.id
            LIMIT 2000
            """
        )
        let now = Date()
        var head: Int64 = 0
        var sessions: [SessionAvailability] = []
        for row in rows {
            let columns = row.makeRandomAccess()
            head = try columns[0].decode(Int64.self)
            guard try columns[1].decode(UUID?.self) != nil else { continue }
            let session = try Session(row: row, offset: 1)
            sessions.append(SessionAvailability(session: session, lowThreshold: lowThreshold, now: now))
        }
        return (head, sessions)
    }

    static func answer(_ request: Request, lastEventID: Int64, content: [String: JSONValue], sessions: [SessionAvailability]) throws
        -> Response
    {
        struct Content: Encodable {
            let fields: [String: JSONValue]
            let sessions: [SessionAvailability]
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: AnyKey.self)
                for (key, value) in fields { try container.encode(value, forKey: AnyKey(key)) }
                try container.encode(sessions, forKey: AnyKey("sessions"))
            }
        }
        let body = Content(fields: content, sessions: sessions)
        let bytes = try JSONCoding.encoder.encode(body)
        return try ETag.respond(to: request, content: body) { _ in withHead(bytes, lastEventID) }
    }

    /// The content object with `last_event_id` added as its first member.
    static func withHead(_ content: Data, _ head: Int64) -> Data {
        var data = Data("{\"last_event_id\":\(head),".utf8)
        data.append(content.dropFirst())
        return data
    }
}

struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
