import Foundation
import Shared

/// The body of `POST /api/v1/sessions`, as every test, benchmark and resilience scenario
/// creates its sessions.
public struct SessionRequest: Sendable {
    public var courseType: String
    public var location: String
    public var capacity: Int
    public var startsAt: Date
    public var length: TimeInterval
    /// The venue's zone; nil leaves it to `VACANCY_TIME_ZONE`.
    public var timeZone: String?

    public init(
        courseType: String, location: String, capacity: Int, startsAt: Date, length: TimeInterval = 3600, timeZone: String? = nil
    ) {
        self.courseType = courseType
        self.location = location
        self.capacity = capacity
        self.startsAt = startsAt
        self.length = length
        self.timeZone = timeZone
    }

    /// The JSON body.
    public var body: String {
        var object: [String: JSONValue] = [
            "course_type": .string(courseType), "location": .string(location), "capacity": .int(capacity),
            "starts_at": .string(RFC3339.string(from: startsAt)),
            "ends_at": .string(RFC3339.string(from: startsAt.addingTimeInterval(length))),
        ]
        if let timeZone { object["time_zone"] = .string(timeZone) }
        // Encoding a dictionary of strings and numbers cannot fail.
        return String(decoding: (try? JSONCoding.encoder.encode(object)) ?? Data(), as: UTF8.self)
    }
}
