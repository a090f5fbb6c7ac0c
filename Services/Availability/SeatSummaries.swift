import Foundation
import Shared

/// Which sessions a listing keeps, by their level.
enum AvailabilityFilter: String, CaseIterable, Sendable {
    /// Every session.
    case any
    /// Sessions that can still be booked (`open` or `low`).
    case available
    case open, low, full, closed

    func admits(_ view: SessionAvailability) -> Bool {
        switch self {
        case .any: true
        case .available: view.isAvailable
        case .open: view.level == .open
        case .low: view.level == .low
        case .full: view.level == .full
        case .closed: view.level == .closed
        }
    }
}

/// Seat totals over a set of sessions.
struct SeatTotals: Encodable, Equatable, Sendable {
    var sessions = 0
    var capacity = 0
    var booked = 0
    var held = 0
    var available = 0

    /// Seats taken (booked or held) as a whole percentage of capacity.
    var utilization: Int {
        capacity == 0 ? 0 : Int((Double(booked + held) * 100 / Double(capacity)).rounded())
    }

    mutating func add(_ view: SessionAvailability) {
        sessions += 1
        capacity += view.capacity
        booked += view.booked
        held += view.held
        available += view.available
    }

    enum CodingKeys: String, CodingKey {
        case sessions, capacity, booked, held, available, utilization
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sessions, forKey: .sessions)
        try container.encode(capacity, forKey: .capacity)
        try container.encode(booked, forKey: .booked)
        try container.encode(held, forKey: .held)
        try container.encode(available, forKey: .available)
        try container.encode(utilization, forKey: .utilization)
    }
}

/// Totals under one key (a course type, a location, a day), encoded flat:
/// `{"course_type": "CPR and AED", "sessions": 4, …}`.
struct KeyedTotals: Encodable, Sendable {
    let keyName: String
    let key: String
    var totals = SeatTotals()

    func encode(to encoder: any Encoder) throws {
        try totals.encode(to: encoder)
        var container = encoder.container(keyedBy: AnyKey.self)
        try container.encode(key, forKey: AnyKey(keyName))
    }

    /// Totals per distinct value of `key`, sorted by that value.
    static func grouping(_ views: [SessionAvailability], as keyName: String, by key: (SessionAvailability) -> String) -> [KeyedTotals] {
        var groups: [String: KeyedTotals] = [:]
        for view in views {
            let value = key(view)
            groups[value, default: KeyedTotals(keyName: keyName, key: value)].totals.add(view)
        }
        return groups.values.sorted { $0.key < $1.key }
    }
}

/// How a course type shows on a calendar: its title and colour. The four first-aid courses
/// have fixed colours; any other course type gets one of the palette's by a hash of its
/// name, so it keeps its colour from answer to answer.
enum CourseStyle {
    static let known: [String: String] = [
        "Emergency First Aid at Work": "#d64545",
        "First Aid at Work": "#2f7ed8",
        "Paediatric First Aid": "#8e5bd0",
        "CPR and AED": "#2a9d6f",
    ]
    static let palette = ["#e08a1e", "#1f9bb4", "#c2528b", "#6f8f2f", "#b8860b", "#5569c9", "#a0522d", "#3b8686"]

    static func color(for courseType: String) -> String {
        if let color = known[courseType] { return color }
        var hash: UInt32 = 2_166_136_261
        for byte in courseType.utf8 {
            hash ^= UInt32(byte)
            hash &*= 16_777_619
        }
        return palette[Int(hash % UInt32(palette.count))]
    }

    struct LegendEntry: Encodable, Sendable {
        let courseType: String
        let title: String
        let color: String

        enum CodingKeys: String, CodingKey {
            case title, color
            case courseType = "course_type"
        }
    }

    /// The known course types and any others present, by title.
    static func legend(including courseTypes: some Sequence<String>) -> [LegendEntry] {
        Set(known.keys).union(courseTypes).sorted().map { LegendEntry(courseType: $0, title: $0, color: color(for: $0)) }
    }
}
