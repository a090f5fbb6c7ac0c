import Foundation
import Shared

/// The span of days a calendar view or a range query covers, first and last day included:
/// local days, each session's `date` in its own venue's zone.
struct DayRange: Sendable, Equatable {
    let first: CalendarDay
    let last: CalendarDay

    /// Longest range `/availability/range` answers.
    static let maximumDays = 93

    var dayCount: Int { first.daysUntil(last) + 1 }
    var days: [CalendarDay] { (0..<dayCount).map { first.adding(days: $0) } }

    /// A range from query parameters: 400 for an end before its start or more than 93 days.
    static func parse(start: String?, end: String?) throws -> DayRange {
        guard let first = try Parameter.day(start, name: "start") else { throw Problem.badParameter("start", "is required (YYYY-MM-DD)") }
        let last = try Parameter.day(end, name: "end") ?? first
        guard first <= last else { throw Problem.badParameter("end", "must not be before start (\(first))") }
        let range = DayRange(first: first, last: last)
        guard range.dayCount <= maximumDays else {
            throw Problem.badParameter("end", "a range covers at most \(maximumDays) days; this one covers \(range.dayCount)")
        }
        return range
    }

    /// The month, ISO week (Monday to Sunday) or day around `day`.
    init(view: CalendarView, around day: CalendarDay) {
        switch view {
        case .day:
            self.init(first: day, last: day)
        case .week:
            let monday = day.adding(days: 1 - day.isoWeekday)
            self.init(first: monday, last: monday.adding(days: 6))
        case .month:
            let firstOfMonth = day.adding(days: 1 - day.day)
            let nextMonth = firstOfMonth.adding(days: 32)
            self.init(first: firstOfMonth, last: nextMonth.adding(days: -nextMonth.day))
        }
    }

    init(first: CalendarDay, last: CalendarDay) {
        self.first = first
        self.last = last
    }
}

enum CalendarView: String, CaseIterable, Sendable {
    case month, week, day
}

extension CalendarDay {
    /// Whole days from this day to `other` (negative when `other` is earlier).
    func daysUntil(_ other: CalendarDay) -> Int {
        other.daysSinceEpoch - daysSinceEpoch
    }

    /// 1 for Monday … 7 for Sunday.
    var isoWeekday: Int {
        let daysSinceEpoch = Int(start.timeIntervalSince1970 / 86_400)
        return (daysSinceEpoch + 3) % 7 + 1  // 1970-01-01 was a Thursday.
    }
}
