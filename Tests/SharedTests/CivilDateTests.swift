import Foundation
import Shared
import Testing

/// The arithmetic calendar against Foundation's, which it replaces on the hot path.
struct CivilDateTests {
    static let gregorian: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        return calendar
    }()

    @Test func daysAndDatesMatchFoundationFrom1970To2200() {
        var mismatches: [String] = []
        // Every day of 1970–2200 would be 84,000 checks; every 7th day and each leap-day region is plenty.
        var day = 0
        while day < 84_000 {
            let date = Date(timeIntervalSince1970: Double(day) * 86_400 + 43_210.75)
            let expected = Self.gregorian.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
            let civil = CalendarDay(date: date)
            if (civil.year, civil.month, civil.day) != (expected.year!, expected.month!, expected.day!) {
                mismatches.append("\(day): \(civil) vs \(expected)")
            }
            let formatted = date.formatted(Date.ISO8601FormatStyle(timeZone: .gmt))
            if RFC3339.string(from: date) != formatted { mismatches.append("\(RFC3339.string(from: date)) vs \(formatted)") }
            day += day % 365 > 50 && day % 365 < 70 ? 1 : 7
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test func microsecondTimestampsRoundTripThroughFoundation() {
        let date = Date(timeIntervalSince1970: 1_795_000_000.123456)
        #expect(RFC3339.microseconds(from: date) == "2026-11-18T11:06:40.123456Z")
        #expect(RFC3339.microseconds(from: Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500000Z")
        let parsed = RFC3339.date(from: RFC3339.microseconds(from: date))
        #expect(abs((parsed?.timeIntervalSince1970 ?? 0) - date.timeIntervalSince1970) < 0.001)
    }

    @Test func dayTextIsValidatedWithLeapYears() {
        #expect(CalendarDay("2028-02-29") != nil)
        #expect(CalendarDay("2026-02-29") == nil)
        #expect(CalendarDay("2100-02-29") == nil, "a century year that is not a leap year")
        #expect(CalendarDay("2000-02-29") != nil)
        #expect(CalendarDay("2026-04-31") == nil)
        #expect(CalendarDay("2026-12-31")?.adding(days: 1).description == "2027-01-01")
        #expect(CalendarDay("2026-03-01")?.adding(days: -1).description == "2026-02-28")
        #expect(CalendarDay("1970-01-01")?.start == Date(timeIntervalSince1970: 0))
    }
}
