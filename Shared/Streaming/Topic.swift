import Foundation

/// The topics a subscriber can follow on `/events`, and which of them need a token.
public enum Topic {
    public static let maximumPerSubscription = 32

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
        case "availability": return .allAvailability
        case "alerts": return .alerts
        case "admin": return .admin
        default: break
        }
        if let rest = topic.dropPrefix("availability.session.") {
            return UUID(uuidString: String(rest)) != nil && rest == rest.lowercased() ? .session : nil
        }
        if let rest = topic.dropPrefix("availability.course.") { return label(rest) ? .course : nil }
        if let rest = topic.dropPrefix("availability.location.") { return label(rest) ? .location : nil }
        if let rest = topic.dropPrefix("availability.") { return CalendarDay(String(rest)) != nil ? .day : nil }
        if let rest = topic.dropPrefix("user.") { return (1...200).contains(rest.count) ? .user : nil }
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
