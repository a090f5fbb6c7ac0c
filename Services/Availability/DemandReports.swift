import Foundation
import PostgresNIO
import Shared

/// When people book: bookings made per day and per hour of the day, both on the clock of
/// the session's venue (a booking for a London course made at 23:30 London time counts on
/// that London day, at 23), from `bookings`. Each report is one statement, so its
/// `last_event_id` and figures share a snapshot.
struct DemandReports: Sendable {
    let database: Database

    /// Bookings made on each of the `days` days up to and including `today`: how many, how
    /// many seats, and how many of them are still active (held or confirmed).
    func trends(courseType: String?, days: Int, today: CalendarDay) async throws -> (Int64, Trends) {
        let range = DayRange(first: today.adding(days: 1 - days), last: today)
        let rows = try await database.query(
            """
            WITH head AS (SELECT coalesce(max(id), 0)::bigint AS last FROM events),
            made AS (
                SELECT ((b.created_at AT TIME ZONE s.time_zone)::date - \(range.first.description)::date) AS slot,
                       count(*)::int AS bookings, sum(b.seats)::int AS seats,
                       (count(*) FILTER (WHERE b.status IN ('held', 'confirmed')))::int AS active
                FROM bookings b JOIN sessions s ON s.id = b.session_id
                WHERE \(unescaped: Self.madeWithin(range))
                  AND (\(courseType)::text IS NULL OR s.course_type = \(courseType))
                GROUP BY 1
            )
            SELECT head.last, made.slot, made.bookings, made.seats, made.active FROM head LEFT JOIN made ON true
            """
        )
        var head: Int64 = 0
        var series = range.days.map { Trends.Day(date: $0) }
        for row in rows {
            let (last, slot, bookings, seats, active) = try row.decode((Int64, Int?, Int?, Int?, Int?).self)
            head = last
            guard let slot, series.indices.contains(slot) else { continue }
            series[slot].bookings = bookings ?? 0
            series[slot].seats = seats ?? 0
            series[slot].active = active ?? 0
        }
        return (head, Trends(courseType: courseType, start: range.first, end: range.last, days: series))
    }

    /// Bookings made over the last `days` days by hour of the day (0–23), with the busiest
    /// hour by seats.
    func peakHours(courseType: String?, days: Int, today: CalendarDay) async throws -> (Int64, PeakHours) {
        let range = DayRange(first: today.adding(days: 1 - days), last: today)
        let rows = try await database.query(
            """
            WITH head AS (SELECT coalesce(max(id), 0)::bigint AS last FROM events),
            made AS (
                SELECT extract(hour FROM b.created_at AT TIME ZONE s.time_zone)::int AS hour,
                       count(*)::int AS bookings, sum(b.seats)::int AS seats
                FROM bookings b JOIN sessions s ON s.id = b.session_id
                WHERE \(unescaped: Self.madeWithin(range))
                  AND (\(courseType)::text IS NULL OR s.course_type = \(courseType))
                GROUP BY 1
            )
            SELECT head.last, made.hour, made.bookings, made.seats FROM head LEFT JOIN made ON true
            """
        )
        var head: Int64 = 0
        var hours = (0..<24).map { PeakHours.Hour(hour: $0) }
        for row in rows {
            let (last, hour, bookings, seats) = try row.decode((Int64, Int?, Int?, Int?).self)
            head = last
            guard let hour, hours.indices.contains(hour) else { continue }
            hours[hour].bookings = bookings ?? 0
            hours[hour].seats = seats ?? 0
        }
        let peak = hours.filter { $0.seats > 0 }.max { ($0.seats, -$0.hour) < ($1.seats, -$1.hour) }
        return (head, PeakHours(courseType: courseType, start: range.first, end: range.last, hours: hours, peakHour: peak?.hour))
    }
}

extension DemandReports {
    /// Bookings `b` of sessions `s` made on the range's days by the venue's clock. The UTC
    /// bounds a day past each end (no zone is a day away from UTC) let the index on
    /// `created_at` find them; the local date then decides.
    static func madeWithin(_ range: DayRange) -> String {
        let first = range.first.description
        let last = range.last.description
        return """
            b.created_at >= ('\(first)'::date - 1)::timestamp AT TIME ZONE 'UTC'
              AND b.created_at < ('\(last)'::date + 2)::timestamp AT TIME ZONE 'UTC'
              AND (b.created_at AT TIME ZONE s.time_zone)::date BETWEEN '\(first)'::date AND '\(last)'::date
            """
    }
}

struct Trends: Encodable {
    let courseType: String?
    let start: CalendarDay
    let end: CalendarDay
    let days: [Day]

    struct Day: Encodable {
        let date: CalendarDay
        var bookings = 0
        var seats = 0
        var active = 0
    }

    enum CodingKeys: String, CodingKey {
        case start, end, days
        case courseType = "course_type"
    }
}

struct PeakHours: Encodable {
    let courseType: String?
    let start: CalendarDay
    let end: CalendarDay
    let hours: [Hour]
    let peakHour: Int?

    struct Hour: Encodable {
        let hour: Int
        var bookings = 0
        var seats = 0
    }

    enum CodingKeys: String, CodingKey {
        case start, end, hours
        case courseType = "course_type"
        case peakHour = "peak_hour"
    }
}
