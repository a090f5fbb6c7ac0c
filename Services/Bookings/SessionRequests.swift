import Foundation
import Shared

/// `POST /api/v1/sessions`
struct CreateSessionRequest: StrictDecodable {
    static let acceptedFields: Set<String> = ["course_type", "location", "starts_at", "ends_at", "time_zone", "capacity", "notes"]
    static let capacityRange = 1...10_000

    var courseType: String
    var location: String
    var startsAt: Date
    var endsAt: Date
    /// The venue's zone; nil takes `VACANCY_TIME_ZONE`.
    var timeZone: String?
    var capacity: Int
    var notes: String

    enum CodingKeys: String, CodingKey {
        case location, capacity, notes
        case courseType = "course_type"
        case startsAt = "starts_at"
        case endsAt = "ends_at"
        case timeZone = "time_zone"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        courseType = try container.decode(String.self, forKey: .courseType)
        location = try container.decode(String.self, forKey: .location)
        startsAt = try container.decode(Date.self, forKey: .startsAt)
        endsAt = try container.decode(Date.self, forKey: .endsAt)
        timeZone = try container.decodeIfPresent(String.self, forKey: .timeZone)
        capacity = try container.decodeIfPresent(Int.self, forKey: .capacity) ?? 12
        notes = try container.decodeIfPresent(String.self, forKey: .notes) ?? ""
    }

    /// Trims and checks every field, throwing one problem that names all bad fields; a
    /// missing `time_zone` becomes `defaultTimeZone`.
    mutating func validate(defaultTimeZone: String) throws {
        var errors = FieldErrors()
        courseType = errors.label(courseType, field: "course_type")
        location = errors.label(location, field: "location")
        errors.times(startsAt: startsAt, endsAt: endsAt)
        timeZone = errors.timeZone(timeZone ?? defaultTimeZone)
        errors.range(capacity, Self.capacityRange, field: "capacity")
        errors.notes(notes)
        try errors.check()
    }
}

/// `PATCH /api/v1/sessions/{id}`: any of these fields, at least one.
struct PatchSessionRequest: StrictDecodable {
    static let acceptedFields: Set<String> = ["capacity", "status", "notes", "starts_at", "ends_at", "time_zone"]

    var capacity: Int?
    var status: SessionStatus?
    var notes: String?
    var startsAt: Date?
    var endsAt: Date?
    var timeZone: String?

    enum CodingKeys: String, CodingKey {
        case capacity, status, notes
        case startsAt = "starts_at"
        case endsAt = "ends_at"
        case timeZone = "time_zone"
    }

    func validateShape() throws {
        var errors = FieldErrors()
        if capacity == nil && status == nil && notes == nil && startsAt == nil && endsAt == nil && timeZone == nil {
            errors.add("body", "must change at least one of capacity, status, notes, starts_at, ends_at, time_zone")
        }
        if let timeZone { _ = errors.timeZone(timeZone) }
        if let capacity { errors.range(capacity, CreateSessionRequest.capacityRange, field: "capacity") }
        if let notes { errors.notes(notes) }
        try errors.check()
    }
}
