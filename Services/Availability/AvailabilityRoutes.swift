import Foundation
import Hummingbird
import HummingbirdCore
import PostgresNIO
import Shared

/// Public reads of seat availability. Every answer carries `last_event_id` (the log head
/// it reflects: subscribe from there and nothing is missed) and an ETag over its content,
/// so the tag changes exactly when the content does and `If-None-Match` gives 304.
struct AvailabilityRoutes: Sendable {
    let database: Database
    let rules: SeatRules
    /// `VACANCY_TIME_ZONE`: whose today a `date` left out means.
    let timeZone: String

    private var today: CalendarDay { VenueTime.day(of: Date(), in: VenueTime.zone(timeZone)) }

    /// Most sessions one answer lists; past it the caller is asked to narrow the query.
    static let maximumSessions = 10_000

    func register(on router: Router<VacancyRequestContext>) {
        let group = router.group("api/v1/availability")
        group.get { request, _ in
            let query = request.uri.formQueryParameters
            let day = try Parameter.day(query["date"].map(String.init), name: "date") ?? today
            var filter = try SessionFilter(query: query)
            filter.range = DayRange(first: day, last: day)
            filter.sessionID = try Parameter.optionalUUID(query["session_id"].map(String.init), name: "session_id")
            let (head, sessions) = try await read(filter)
            return try Self.answer(
                request, lastEventID: head, content: Listing(fields: ["date": .string(day.description)], sessions: sessions))
        }
        group.get("range") { request, _ in
            let query = request.uri.formQueryParameters
            var filter = try SessionFilter(query: query)
            let range = try DayRange.parse(start: query["start"].map(String.init), end: query["end"].map(String.init))
            filter.range = range
            let (head, sessions) = try await read(filter)
            return try Self.answer(request, lastEventID: head, content: RangeAnswer(range: range, sessions: sessions))
        }
        group.get("sessions/:id") { request, context in
            let id = try Parameter.uuid(context.parameters.get("id"), name: "id")
            var filter = SessionFilter()
            filter.sessionID = id
            let (head, sessions) = try await read(filter)
            guard let session = sessions.first else { throw Problem.notFound("No session \(id.uuidString.lowercased()).") }
            return try Self.answer(request, lastEventID: head, content: session)
        }
        group.get("stats") { request, _ in
            let query = request.uri.formQueryParameters
            let day = try Parameter.day(query["date"].map(String.init), name: "date") ?? today
            var filter = try SessionFilter(query: query, availability: false)
            filter.range = DayRange(first: day, last: day)
            let (head, sessions) = try await read(filter)
            return try Self.answer(request, lastEventID: head, content: DayStats(day: day, sessions: sessions))
        }
        group.get("alerts") { request, _ in
            let query = request.uri.formQueryParameters
            let filter = try SessionFilter(query: query, availability: false)
            let kind = try Parameter.enumeration(query["kind"].map(String.init), name: "kind", among: AlertKind.current)
            let (head, alerts) = try await currentAlerts(filter, kind: kind)
            return try Self.answer(request, lastEventID: head, content: ["alerts": alerts])
        }
        let reports = DemandReports(database: database)
        /// `course_type` and `days` (1 to 93) in, a demand report out.
        func demand(_ path: String, defaultDays: Int, _ report: @escaping @Sendable (String?, Int) async throws -> (Int64, some Encodable))
        {
            group.get(RouterPath(path)) { request, _ in
                let query = request.uri.formQueryParameters
                let courseType = try Parameter.label(query["course_type"].map(String.init), name: "course_type")
                let days = try Parameter.int(
                    query["days"].map(String.init), name: "days", default: defaultDays, in: 1...DayRange.maximumDays)
                let (head, content) = try await report(courseType, days)
                return try Self.answer(request, lastEventID: head, content: content)
            }
        }
        demand("trends", defaultDays: 14) { try await reports.trends(courseType: $0, days: $1, today: today) }
        demand("peak-hours", defaultDays: 30) { try await reports.peakHours(courseType: $0, days: $1, today: today) }
        router.get("api/v1/calendar") { request, _ in
            let query = request.uri.formQueryParameters
            let view = try Parameter.enumeration(query["view"].map(String.init), name: "view", as: CalendarView.self) ?? .month
            let day = try Parameter.day(query["date"].map(String.init), name: "date") ?? today
            var filter = try SessionFilter(query: query)
            let range = DayRange(view: view, around: day)
            filter.range = range
            let (head, sessions) = try await read(filter)
            return try Self.answer(
                request, lastEventID: head, content: CalendarAnswer(view: view, date: day, range: range, sessions: sessions))
        }
    }

    /// Which sessions a read covers.
    struct SessionFilter: Sendable {
        var range: DayRange?
        var sessionID: UUID?
        var courseType: String?
        var location: String?
        var availability: AvailabilityFilter = .any

        init() {}

        /// The `course_type`, `location` and (when `availability` is true) `availability` parameters.
        init(query: FlatDictionary<Substring, Substring>, availability: Bool = true) throws {
            courseType = try Parameter.label(query["course_type"].map(String.init), name: "course_type")
            location = try Parameter.label(query["location"].map(String.init), name: "location")
            if availability {
                self.availability =
                    try Parameter.enumeration(query["availability"].map(String.init), name: "availability", as: AvailabilityFilter.self)
                    ?? .any
            }
        }
    }

    /// Sessions and the event log head from one snapshot, by start time.
    func read(_ filter: SessionFilter) async throws -> (Int64, [SessionAvailability]) {
        let from = filter.range?.first.description
        let to = filter.range?.last.description
        let limit = Self.maximumSessions + 1
        let rows = try await database.query(
            """
            WITH head AS (SELECT coalesce(max(id), 0)::bigint AS last FROM events)
            SELECT head.last, \(unescaped: Session.columns(from: "s")), \(unescaped: rules.columns(of: "s"))
            FROM head LEFT JOIN sessions s ON
                (\(from)::date IS NULL OR s.local_date >= \(from)::date)
                AND (\(to)::date IS NULL OR s.local_date <= \(to)::date)
                AND (\(filter.sessionID)::uuid IS NULL OR s.id = \(filter.sessionID))
                AND (\(filter.courseType)::text IS NULL OR s.course_type = \(filter.courseType))
                AND (\(filter.location)::text IS NULL OR s.location = \(filter.location))
            ORDER BY s.starts_at, s.id
            LIMIT \(limit)
            """
        )
        let (head, views) = try headAndViews(rows)
        let sessions = views.filter(filter.availability.admits)
        if rows.count >= limit {
            throw Problem(
                "too-many-sessions", title: "Too many sessions for one answer", status: .unprocessableContent,
                detail: "More than \(Self.maximumSessions) sessions match; narrow by course_type, location or a shorter range."
            )
        }
        return (head, sessions)
    }

    /// Upcoming sessions that are low, full, or in high demand right now.
    func currentAlerts(_ filter: SessionFilter, kind: AlertKind?) async throws -> (Int64, [CurrentAlert]) {
        let rows = try await database.query(
            """
            WITH head AS (SELECT coalesce(max(id), 0)::bigint AS last FROM events)
            SELECT head.last, \(unescaped: Session.columns(from: "s")), \(unescaped: rules.columns(of: "s"))
            FROM head LEFT JOIN sessions s ON
                (\(unescaped: rules.level(of: "s")) IN ('low', 'full') OR \(unescaped: rules.isHighDemand(of: "s")))
                AND (\(filter.courseType)::text IS NULL OR s.course_type = \(filter.courseType))
                AND (\(filter.location)::text IS NULL OR s.location = \(filter.location))
            ORDER BY s.starts_at, s.id
            LIMIT \(Self.maximumSessions)
            """
        )
        let (head, views) = try headAndViews(rows)
        var alerts: [CurrentAlert] = []
        for view in views {
            var kinds: [AlertKind] = []
            if view.level == .full { kinds.append(.full) }
            if view.level == .low { kinds.append(.low) }
            if view.isHighDemand { kinds.append(.highDemand) }
            for found in kinds where kind == nil || kind == found { alerts.append(CurrentAlert(kind: found, session: view)) }
        }
        return (head, alerts)
    }

    /// Rows of `head.last`, `Session.columns(from: "s")` and `rules.columns(of: "s")` from `head LEFT JOIN sessions`
    /// (one row with no session when none match): the log head and each session's public view.
    private func headAndViews(_ rows: [PostgresRow]) throws -> (Int64, [SessionAvailability]) {
        var head: Int64 = 0
        var views: [SessionAvailability] = []
        for row in rows {
            let columns = row.makeRandomAccess()
            head = try columns.column("last").decode(Int64.self)
            guard try columns.column("s_id").decode(UUID?.self) != nil else { continue }
            views.append(try SessionAvailability(row: row, prefix: "s_"))
        }
        return (head, views)
    }

    /// The answer with its ETag over the content, and `last_event_id` added outside it.
    static func answer(_ request: Request, lastEventID: Int64, content: some Encodable) throws -> Response {
        let bytes = try JSONCoding.encoder.encode(content)
        return try ETag.respond(to: request, content: content) { _ in withHead(bytes, lastEventID) }
    }

    /// The content object with `last_event_id` added as its first member.
    static func withHead(_ content: Data, _ head: Int64) -> Data {
        var data = Data("{\"last_event_id\":\(head),".utf8)
        data.append(content.dropFirst())
        return data
    }
}

/// Sessions with a few top-level fields beside them.
struct Listing: Encodable {
    let fields: [String: JSONValue]
    let sessions: [SessionAvailability]

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        for (key, value) in fields { try container.encode(value, forKey: AnyKey(key)) }
        try container.encode(sessions, forKey: AnyKey("sessions"))
    }
}

/// `/availability/range`: every day of the range with its totals, and the sessions.
struct RangeAnswer: Encodable {
    let start: CalendarDay
    let end: CalendarDay
    let days: [KeyedTotals]
    let totals: SeatTotals
    let sessions: [SessionAvailability]

    init(range: DayRange, sessions: [SessionAvailability]) {
        start = range.first
        end = range.last
        var byDay = Dictionary(uniqueKeysWithValues: range.days.map { ($0.description, KeyedTotals(keyName: "date", key: $0.description)) })
        var totals = SeatTotals()
        for session in sessions {
            byDay[session.date.description]?.totals.add(session)
            totals.add(session)
        }
        days = byDay.values.sorted { $0.key < $1.key }
        self.totals = totals
        self.sessions = sessions
    }
}

/// `/availability/stats`: one day's seats, overall and by level, course type and location.
struct DayStats: Encodable {
    let date: CalendarDay
    let totals: SeatTotals
    let levels: [String: Int]
    let byCourseType: [KeyedTotals]
    let byLocation: [KeyedTotals]

    init(day: CalendarDay, sessions: [SessionAvailability]) {
        date = day
        var totals = SeatTotals()
        var levels = [AvailabilityLevel.open, .low, .full, .closed].reduce(into: [String: Int]()) { $0[$1.rawValue] = 0 }
        for session in sessions {
            totals.add(session)
            levels[session.level.rawValue, default: 0] += 1
        }
        self.totals = totals
        self.levels = levels
        byCourseType = KeyedTotals.grouping(sessions, as: "course_type") { $0.courseType }
        byLocation = KeyedTotals.grouping(sessions, as: "location") { $0.location }
    }

    enum CodingKeys: String, CodingKey {
        case date, totals, levels
        case byCourseType = "by_course_type"
        case byLocation = "by_location"
    }
}

/// Why a session is worth a look: the `kind` of an `alert` event and of a row of `/availability/alerts`.
enum AlertKind: String, CaseIterable, Sendable, Encodable {
    case low, full, open
    case highDemand = "high_demand"

    /// The kinds a session can be in now (`open` is only ever a change, back from low or full).
    static let current: [AlertKind] = [.low, .full, .highDemand]
}

/// One row of `/availability/alerts`: a session and why it is worth a look.
struct CurrentAlert: Encodable {
    let kind: AlertKind
    let session: SessionAvailability
}

/// `/api/v1/calendar`: entries for a month, week or day, ready to draw.
struct CalendarAnswer: Encodable {
    let view: String
    let date: CalendarDay
    let start: CalendarDay
    let end: CalendarDay
    let entries: [Entry]
    let legend: [CourseStyle.LegendEntry]
    /// Topics that cover the visible days, to follow on `/events`.
    let topics: [String]

    init(view: CalendarView, date: CalendarDay, range: DayRange, sessions: [SessionAvailability]) {
        self.view = view.rawValue
        self.date = date
        start = range.first
        end = range.last
        entries = sessions.map(Entry.init)
        legend = CourseStyle.legend(including: sessions.map(\.courseType))
        topics = range.days.map(Topic.day)
    }

    struct Entry: Encodable {
        let id: String
        let title: String
        let courseType: String
        let date: String
        let start: Date
        let end: Date
        let timeZone: String
        let localStart: String
        let localEnd: String
        let location: String
        let available: Int
        let capacity: Int
        let booked: Int
        let held: Int
        let waiting: Int
        let percentFull: Int
        let color: String
        let level: AvailabilityLevel
        let isAvailable: Bool

        init(_ view: SessionAvailability) {
            id = view.sessionID.uuidString.lowercased()
            title = view.courseType
            courseType = view.courseType
            date = view.date.description
            start = view.startsAt
            end = view.endsAt
            timeZone = view.timeZone
            localStart = view.localStart
            localEnd = view.localEnd
            location = view.location
            available = view.available
            capacity = view.capacity
            booked = view.booked
            held = view.held
            waiting = view.waiting
            percentFull = view.utilization
            color = CourseStyle.color(for: view.courseType)
            level = view.level
            isAvailable = view.isAvailable
        }

        enum CodingKeys: String, CodingKey {
            case id, title, date, start, end, location, available, capacity, booked, held, waiting, color, level
            case courseType = "course_type"
            case timeZone = "time_zone"
            case localStart = "local_start"
            case localEnd = "local_end"
            case percentFull = "percent_full"
            case isAvailable = "is_available"
        }
    }
}

struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
