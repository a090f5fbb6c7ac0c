import Foundation
import PostgresNIO

/// Where a session is in its life.
public enum SessionStatus: String, Sendable, Codable, CaseIterable {
    case scheduled, cancelled, completed
}

/// A bookable session (a course date, a class, an appointment slot) and its seat counts.
public struct Session: Sendable, Hashable, Codable {
    public var id: UUID
    public var courseType: String
    public var location: String
    public var startsAt: Date
    public var endsAt: Date
    /// The venue's IANA time zone, and the day the session starts there (its `date`).
    public var timeZone: String
    public var localDate: CalendarDay
    public var capacity: Int
    public var booked: Int
    public var held: Int
    /// Entries waiting in the session's line, and the seats they want.
    public var waiting: Int
    public var waitingSeats: Int
    public var status: SessionStatus
    public var notes: String
    public var version: Int64
    public var createdAt: Date
    public var updatedAt: Date

    /// Seats that can still be booked or held.
    public var available: Int { max(0, capacity - booked - held) }

    /// The columns `init(row:prefix:)` reads.
    public static let columns =
        "id, course_type, location, starts_at, ends_at, time_zone, local_date, capacity, booked, held, waiting, waiting_seats, status, notes, version, created_at, updated_at"

    /// `columns` as a join selects them from table alias `alias`: each named `alias_column`,
    /// so `init(row:prefix:)` reads them by name (`prefix: "alias_"`).
    public static func columns(from alias: String) -> String {
        columns.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.map { "\(alias).\($0) AS \(alias)_\($0)" }
            .joined(separator: ", ")
    }

    /// Reads the `columns` by name, each behind `prefix` (`alias_` for `columns(from: alias)`).
    public init(row: PostgresRow, prefix: String = "") throws {
        let columns = row.makeRandomAccess()
        let id = try columns.column(prefix + "id").decode(UUID.self)
        let courseType = try columns.column(prefix + "course_type").decode(String.self)
        let location = try columns.column(prefix + "location").decode(String.self)
        let startsAt = try columns.column(prefix + "starts_at").decode(Date.self)
        let endsAt = try columns.column(prefix + "ends_at").decode(Date.self)
        let timeZone = try columns.column(prefix + "time_zone").decode(String.self)
        let localDate = CalendarDay(date: try columns.column(prefix + "local_date").decode(Date.self))
        let capacity = try columns.column(prefix + "capacity").decode(Int.self)
        let booked = try columns.column(prefix + "booked").decode(Int.self)
        let held = try columns.column(prefix + "held").decode(Int.self)
        let waiting = try columns.column(prefix + "waiting").decode(Int.self)
        let waitingSeats = try columns.column(prefix + "waiting_seats").decode(Int.self)
        let status = try columns.column(prefix + "status").decode(String.self)
        let notes = try columns.column(prefix + "notes").decode(String.self)
        let version = try columns.column(prefix + "version").decode(Int64.self)
        let createdAt = try columns.column(prefix + "created_at").decode(Date.self)
        let updatedAt = try columns.column(prefix + "updated_at").decode(Date.self)
        self.id = id
        self.courseType = courseType
        self.location = location
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.timeZone = timeZone
        self.localDate = localDate
        self.capacity = capacity
        self.booked = booked
        self.held = held
        self.waiting = waiting
        self.waitingSeats = waitingSeats
        self.status = try .stored(status, column: "sessions.status")
        self.notes = notes
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// Start and end as the venue's clock shows them (RFC 3339 with its offset then).
    public var localStart: String { VenueTime.rfc3339(startsAt, in: VenueTime.zone(timeZone)) }
    public var localEnd: String { VenueTime.rfc3339(endsAt, in: VenueTime.zone(timeZone)) }

    enum CodingKeys: String, CodingKey {
        case id, location, capacity, booked, held, waiting, status, notes, version, available, date
        case timeZone = "time_zone"
        case localStart = "local_start"
        case localEnd = "local_end"
        case waitingSeats = "waiting_seats"
        case courseType = "course_type"
        case startsAt = "starts_at"
        case endsAt = "ends_at"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(UUID.self, forKey: .id)
        courseType = try container.decode(String.self, forKey: .courseType)
        location = try container.decode(String.self, forKey: .location)
        startsAt = try container.decode(Date.self, forKey: .startsAt)
        endsAt = try container.decode(Date.self, forKey: .endsAt)
        timeZone = try container.decodeIfPresent(String.self, forKey: .timeZone) ?? "UTC"
        localDate =
            try container.decodeIfPresent(CalendarDay.self, forKey: .date) ?? VenueTime.day(of: startsAt, in: VenueTime.zone(timeZone))
        capacity = try container.decode(Int.self, forKey: .capacity)
        booked = try container.decode(Int.self, forKey: .booked)
        held = try container.decode(Int.self, forKey: .held)
        waiting = try container.decodeIfPresent(Int.self, forKey: .waiting) ?? 0
        waitingSeats = try container.decodeIfPresent(Int.self, forKey: .waitingSeats) ?? 0
        status = try container.decode(SessionStatus.self, forKey: .status)
        notes = try container.decode(String.self, forKey: .notes)
        version = try container.decode(Int64.self, forKey: .version)
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        updatedAt = try container.decode(Date.self, forKey: .updatedAt)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id.uuidString.lowercased(), forKey: .id)
        try container.encode(courseType, forKey: .courseType)
        try container.encode(location, forKey: .location)
        try container.encode(startsAt, forKey: .startsAt)
        try container.encode(endsAt, forKey: .endsAt)
        try container.encode(timeZone, forKey: .timeZone)
        try container.encode(localDate, forKey: .date)
        try container.encode(localStart, forKey: .localStart)
        try container.encode(localEnd, forKey: .localEnd)
        try container.encode(capacity, forKey: .capacity)
        try container.encode(booked, forKey: .booked)
        try container.encode(held, forKey: .held)
        try container.encode(available, forKey: .available)
        try container.encode(waiting, forKey: .waiting)
        try container.encode(waitingSeats, forKey: .waitingSeats)
        try container.encode(status, forKey: .status)
        try container.encode(notes, forKey: .notes)
        try container.encode(version, forKey: .version)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}
