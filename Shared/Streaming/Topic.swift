import Foundation

/// The topics a subscriber can follow on `/events`, and which of them need a token: every
/// topic name is made by the builders here and read by `kind(of:)`, from the same prefixes.
public enum Topic {
    public static let maximumPerSubscription = 32

    /// Every session's availability.
    public static let allAvailability = "availability"
    /// Every `alert`.
    public static let alerts = "alerts"
    /// The fan-out's `metrics` snapshots (private).
    public static let admin = "admin"

    static let dayPrefix = "availability."
    public static let sessionPrefix = "availability.session."
    static let coursePrefix = "availability.course."
    static let locationPrefix = "availability.location."
    static let userPrefix = "user."

    /// Sessions starting on `day`.
    public static func day(_ day: CalendarDay) -> String { dayPrefix + day.description }
    /// One session.
    public static func session(_ id: UUID) -> String { sessionPrefix + id.uuidString.lowercased() }
    /// One course type.
    public static func course(_ courseType: String) -> String { coursePrefix + courseType }
    /// One location.
    public static func location(_ location: String) -> String { locationPrefix + location }
    /// One customer's own events (private).
    public static func user(_ customerID: String) -> String { userPrefix + customerID }

    public enum Kind: Sendable, Equatable {
        case allAvailability, day, session, course, location, alerts, user, admin
    }

    /// The topic's kind, or nil when it is not one of the forms:
    /// `availability`, `availability.{YYYY-MM-DD}`, `availability.session.{uuid}`,
    /// `availability.course.{course_type}`, `availability.location.{location}`, `alerts`,
    /// `user.{customer_id}`, `admin`.
    public static func kind(of topic: String) -> Kind? {
        guard !topic.isEmpty, topic.utf8.count <= 250, !topic.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { return nil }
        switch topic {
        case allAvailability: return .allAvailability
        case alerts: return .alerts
        case admin: return .admin
        default: break
        }
        if let rest = topic.dropPrefix(sessionPrefix) {
            return UUID(uuidString: String(rest)) != nil && rest == rest.lowercased() ? .session : nil
        }
        if let rest = topic.dropPrefix(coursePrefix) { return label(rest) ? .course : nil }
        if let rest = topic.dropPrefix(locationPrefix) { return label(rest) ? .location : nil }
        if let rest = topic.dropPrefix(dayPrefix) { return CalendarDay(String(rest)) != nil ? .day : nil }
        if let rest = topic.dropPrefix(userPrefix) { return (1...200).contains(rest.count) ? .user : nil }
        return nil
    }

    /// Private topics need a subscriber token that names them.
    public static func isPrivate(_ kind: Kind) -> Bool {
        kind == .user || kind == .admin
    }

    private static func label(_ text: Substring) -> Bool {
        (1...100).contains(text.count)
    }
}

extension String {
    fileprivate func dropPrefix(_ prefix: String) -> Substring? {
        hasPrefix(prefix) ? self[index(startIndex, offsetBy: prefix.count)...] : nil
    }
}
