import Foundation
import PostgresNIO
import Shared

/// How full a session looks to someone choosing one; `SeatRules.level` decides it.
enum AvailabilityLevel: String, Sendable, Codable {
    case open, low, full, closed
}

/// The public view of one session's seats: the payload of `availability.updated`.
struct SessionAvailability: Sendable, Codable, Equatable {
    var sessionID: UUID
    var courseType: String
    var location: String
    /// The day it starts in its venue's zone.
    var date: CalendarDay
    var startsAt: Date
    var endsAt: Date
    var timeZone: String
    /// `startsAt` and `endsAt` on the venue's clock (RFC 3339 with its offset).
    var localStart: String
    var localEnd: String
    var capacity: Int
    var booked: Int
    var held: Int
    var available: Int
    /// Entries waiting in the session's line and the seats they want.
    var waiting: Int
    var waitingSeats: Int
    var utilization: Int
    var level: AvailabilityLevel
    var isAvailable: Bool
    var status: SessionStatus
    var version: Int64
    /// When the session's row last changed (its booking's transaction), to the microsecond.
    var updatedAt: String
    /// Whether `SeatRules.isHighDemand` holds; not part of the payload.
    var isHighDemand = false

    /// The session of `Session.columns(from:)` and its `SeatRules.columns(of:)`, all behind `prefix`.
    init(row: PostgresRow, prefix: String) throws {
        let columns = row.makeRandomAccess()
        self.init(
            session: try Session(row: row, prefix: prefix),
            level: try .stored(try columns.column(prefix + "level").decode(String.self), column: "level"),
            isHighDemand: try columns.column(prefix + "high_demand").decode(Bool.self)
        )
    }

    init(session: Session, level: AvailabilityLevel, isHighDemand: Bool) {
        sessionID = session.id
        courseType = session.courseType
        location = session.location
        date = session.localDate
        startsAt = session.startsAt
        endsAt = session.endsAt
        timeZone = session.timeZone
        localStart = session.localStart
        localEnd = session.localEnd
        capacity = session.capacity
        booked = session.booked
        held = session.held
        available = session.available
        waiting = session.waiting
        waitingSeats = session.waitingSeats
        utilization = session.capacity == 0 ? 100 : Int((Double(session.booked + session.held) * 100 / Double(session.capacity)).rounded())
        self.level = level
        self.isHighDemand = isHighDemand
        isAvailable = level == .open || level == .low
        status = session.status
        version = session.version
        updatedAt = RFC3339.microseconds(from: session.updatedAt)
    }

    /// Every topic a subscriber may follow this session by.
    var topics: [String] {
        [
            Topic.allAvailability, Topic.day(date), Topic.session(sessionID), Topic.course(courseType),
            Topic.location(location),
        ]
    }

    enum CodingKeys: String, CodingKey {
        case date, capacity, booked, held, available, utilization, level, status, version, location, waiting
        case waitingSeats = "waiting_seats"
        case sessionID = "session_id"
        case courseType = "course_type"
        case startsAt = "starts_at"
        case endsAt = "ends_at"
        case timeZone = "time_zone"
        case localStart = "local_start"
        case localEnd = "local_end"
        case isAvailable = "is_available"
        case updatedAt = "updated_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sessionID.uuidString.lowercased(), forKey: .sessionID)
        try container.encode(courseType, forKey: .courseType)
        try container.encode(location, forKey: .location)
        try container.encode(date, forKey: .date)
        try container.encode(startsAt, forKey: .startsAt)
        try container.encode(endsAt, forKey: .endsAt)
        try container.encode(timeZone, forKey: .timeZone)
        try container.encode(localStart, forKey: .localStart)
        try container.encode(localEnd, forKey: .localEnd)
        try container.encode(capacity, forKey: .capacity)
        try container.encode(booked, forKey: .booked)
        try container.encode(held, forKey: .held)
        try container.encode(available, forKey: .available)
        try container.encode(waiting, forKey: .waiting)
        try container.encode(waitingSeats, forKey: .waitingSeats)
        try container.encode(utilization, forKey: .utilization)
        try container.encode(level, forKey: .level)
        try container.encode(isAvailable, forKey: .isAvailable)
        try container.encode(status, forKey: .status)
        try container.encode(version, forKey: .version)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}
