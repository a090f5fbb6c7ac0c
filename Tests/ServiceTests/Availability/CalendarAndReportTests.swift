import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Availability

/// The range, stats, calendar, alerts and demand reads, checked against the rows.
@Suite(.timeLimit(.minutes(2))) struct CalendarAndReportTests {
    static let courses = ["First Aid at Work", "CPR and AED", "Beekeeping"]

    /// Twelve sessions over the next days, three course types, two locations, some bookings.
    static func seed(_ bookings: BookingsHarness) async throws -> [String] {
        var ids: [String] = []
        for index in 0..<12 {
            let id = try await bookings.createSession(
                capacity: 6 + index % 3, daysAhead: 2 + index % 6, courseType: courses[index % 3],
                location: index % 2 == 0 ? "Location A" : "Location B")
            ids.append(id)
            let seats = index % 4 == 0 ? 6 + index % 3 : index % 4
            if seats > 0 { #expect(try await bookings.book(session: id, adults: seats).status == 201) }
        }
        return ids
    }

    @Test func rangeStatsAndCalendarAgreeWithTheRows() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db) { calculator in
                    _ = try await Self.seed(bookings)
                    let today = CalendarDay(date: Date())
                    let range = DayRange(first: today, last: today.adding(days: 9))

                    let answer = try await TestHTTP.send(
                        .GET, calculator + "/api/v1/availability/range?start=\(range.first)&end=\(range.last)")
                    #expect(answer.status == 200)
                    let rows = try await Self.rowTotals(db, from: range.first, to: range.last)
                    let totals = try #require(answer.json["totals"] as? [String: Any])
                    #expect(totals["sessions"] as? Int == rows.sessions)
                    #expect(totals["capacity"] as? Int == rows.capacity)
                    #expect(totals["booked"] as? Int == rows.booked)
                    #expect(totals["available"] as? Int == rows.capacity - rows.booked - rows.held)
                    let days = try #require(answer.json["days"] as? [[String: Any]])
                    #expect(days.count == 10, "every day of the range, empty ones too")
                    #expect(days.compactMap { $0["sessions"] as? Int }.reduce(0, +) == rows.sessions)
                    #expect((answer.json["sessions"] as? [Any])?.count == rows.sessions)

                    let full = try await TestHTTP.send(
                        .GET, calculator + "/api/v1/availability/range?start=\(range.first)&end=\(range.last)&availability=full")
                    let fullCount = try await db.scalar(
                        "SELECT count(*)::int FROM sessions WHERE booked + held = capacity AND local_date BETWEEN \(range.first.description)::date AND \(range.last.description)::date"
                    )
                    #expect(fullCount == 3)
                    let fullSessions = try #require(full.json["sessions"] as? [[String: Any]])
                    #expect(fullSessions.count == fullCount)
                    #expect(fullSessions.allSatisfy { $0["level"] as? String == "full" })

                    // Stats for each day with sessions match that day's rows, by course type too.
                    for offset in 2...7 {
                        let day = today.adding(days: offset)
                        let stats = try await TestHTTP.send(.GET, calculator + "/api/v1/availability/stats?date=\(day)")
                        #expect(stats.status == 200)
                        let dayRows = try await Self.rowTotals(db, from: day, to: day)
                        let dayTotals = try #require(stats.json["totals"] as? [String: Any])
                        #expect(dayTotals["sessions"] as? Int == dayRows.sessions)
                        #expect(dayTotals["booked"] as? Int == dayRows.booked)
                        #expect(dayTotals["capacity"] as? Int == dayRows.capacity)
                        let byCourse = try #require(stats.json["by_course_type"] as? [[String: Any]])
                        #expect(byCourse.compactMap { $0["booked"] as? Int }.reduce(0, +) == dayRows.booked)
                        let levels = try #require(stats.json["levels"] as? [String: Int])
                        #expect(levels.values.reduce(0, +) == dayRows.sessions)
                    }

                    // The calendar's month around the first session lists exactly that month's sessions.
                    let anchor = today.adding(days: 4)
                    let month = DayRange(view: .month, around: anchor)
                    let calendar = try await TestHTTP.send(.GET, calculator + "/api/v1/calendar?view=month&date=\(anchor)")
                    #expect(calendar.status == 200)
                    #expect(calendar.string("start") == month.first.description)
                    #expect(calendar.string("end") == month.last.description)
                    let monthRows = try await db.database.query(
                        "SELECT id, capacity - booked - held, course_type FROM sessions WHERE local_date BETWEEN \(month.first.description)::date AND \(month.last.description)::date"
                    )
                    var expected: [String: Int] = [:]
                    for row in monthRows {
                        let (id, available, _) = try row.decode((UUID, Int, String).self)
                        expected[id.uuidString.lowercased()] = available
                    }
                    let entries = try #require(calendar.json["entries"] as? [[String: Any]])
                    #expect(entries.count == expected.count)
                    for entry in entries {
                        let id = try #require(entry["id"] as? String)
                        #expect(entry["available"] as? Int == expected[id])
                        let courseType = try #require(entry["course_type"] as? String)
                        #expect(entry["color"] as? String == CourseStyle.color(for: courseType))
                        #expect(entry["title"] as? String == courseType)
                        let capacity = try #require(entry["capacity"] as? Int)
                        let percent = try #require(entry["percent_full"] as? Int)
                        #expect(percent == Int((Double(capacity - (entry["available"] as? Int ?? 0)) * 100 / Double(capacity)).rounded()))
                    }
                    let colors = Set(entries.compactMap { $0["color"] as? String })
                    #expect(colors.count == Set(entries.compactMap { $0["course_type"] as? String }).count, "one colour per course type")
                    let legend = try #require(calendar.json["legend"] as? [[String: Any]])
                    #expect(legend.contains { $0["course_type"] as? String == "Beekeeping" })

                    let week = try await TestHTTP.send(.GET, calculator + "/api/v1/calendar?view=week&date=\(anchor)&location=Location%20A")
                    #expect((week.json["topics"] as? [String])?.count == 7)
                    let weekEntries = try #require(week.json["entries"] as? [[String: Any]])
                    #expect(weekEntries.allSatisfy { $0["location"] as? String == "Location A" })
                    let monday = try #require(week.string("start").flatMap(CalendarDay.init))
                    #expect(monday.isoWeekday == 1)
                    #expect(monday <= anchor && anchor <= monday.adding(days: 6))

                    // Every CPR session three days out still has seats.
                    let available = try await TestHTTP.send(
                        .GET,
                        calculator
                            + "/api/v1/calendar?view=month&date=\(today.adding(days: 3))&availability=available&course_type=CPR%20and%20AED"
                    )
                    let availableEntries = try #require(available.json["entries"] as? [[String: Any]])
                    #expect(!availableEntries.isEmpty)
                    #expect(
                        availableEntries.allSatisfy { ($0["available"] as? Int ?? 0) > 0 && $0["course_type"] as? String == "CPR and AED" })
                    // A browser's URLSearchParams writes the spaces as `+`: the same answer.
                    let plus = try await TestHTTP.send(
                        .GET,
                        calculator
                            + "/api/v1/calendar?view=month&date=\(today.adding(days: 3))&availability=available&course_type=CPR+and+AED")
                    #expect((plus.json["entries"] as? [[String: Any]])?.count == availableEntries.count)
                }
            }
        }
    }

    @Test func calendarETagChangesExactlyWhenItsContentDoes() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db) { calculator in
                    let day = CalendarDay(date: Date().addingTimeInterval(3 * 86_400))
                    let session = try await bookings.createSession(daysAhead: 3)
                    let elsewhere = try await bookings.createSession(daysAhead: 3, location: "Location B")
                    let url = calculator + "/api/v1/calendar?view=day&date=\(day)&location=Location%20A"
                    try await expectEventually(within: 3) { try await db.changesDrained() }
                    let first = try await TestHTTP.send(.GET, url)
                    let etag = try #require(first.headers.first(name: "ETag"))
                    #expect(first.int("last_event_id") == (try await db.scalar("SELECT max(id)::int FROM events")))

                    // A booking at the other location leaves this answer as it was.
                    #expect(try await bookings.book(session: elsewhere, adults: 1).status == 201)
                    let same = try await TestHTTP.send(.GET, url, headers: [("If-None-Match", etag)])
                    #expect(same.status == 304)

                    #expect(try await bookings.book(session: session, adults: 1).status == 201)
                    try await expectEventually(within: 3) { try await db.changesDrained() }
                    let changed = try await TestHTTP.send(.GET, url, headers: [("If-None-Match", etag)])
                    #expect(changed.status == 200)
                    #expect(changed.headers.first(name: "ETag") != etag)
                    let firstHead = try #require(first.int("last_event_id"))
                    #expect((changed.int("last_event_id") ?? 0) > firstHead)
                    #expect((changed.json["entries"] as? [[String: Any]])?.first?["available"] as? Int == 11)
                }
            }
        }
    }

    @Test func malformedReadsAreProblems() async throws {
        try await TestDatabase.with { db in
            try await withCalculator(on: db) { calculator in
                let bad: [(String, String)] = [
                    ("/api/v1/availability/range?start=2026-03-01&end=2026-06-02", "end"),  // 94 days
                    ("/api/v1/availability/range?start=2026-03-10&end=2026-03-09", "end"),
                    ("/api/v1/availability/range?end=2026-03-09", "start"),
                    ("/api/v1/availability/range?start=2026-3-1", "start"),
                    ("/api/v1/availability/range?start=2026-03-01&availability=some", "availability"),
                    ("/api/v1/availability/stats?date=tomorrow", "date"),
                    ("/api/v1/availability/trends?days=0", "days"),
                    ("/api/v1/availability/trends?days=94", "days"),
                    ("/api/v1/availability/peak-hours?days=x", "days"),
                    ("/api/v1/availability/alerts?kind=panic", "kind"),
                    ("/api/v1/calendar?view=year", "view"),
                    ("/api/v1/calendar?date=2026-02-29", "date"),
                ]
                for (path, field) in bad {
                    let response = try await TestHTTP.send(.GET, calculator + path)
                    #expect(response.status == 400, "\(path)")
                    #expect(response.contentType == "application/problem+json", "\(path)")
                    #expect((response.json["errors"] as? [[String: Any]])?.first?["field"] as? String == field, "\(path)")
                }
                let longest = try await TestHTTP.send(.GET, calculator + "/api/v1/availability/range?start=2026-03-01&end=2026-06-01")
                #expect(longest.status == 200, "93 days is allowed")
                #expect((longest.json["days"] as? [Any])?.count == 93)
            }
        }
    }

    @Test func highDemandIsAlertedOnceAndListedWithLowAndFull() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db, clock: ClockTick(interval: .milliseconds(200), retentionHours: 24, keepAtLeast: 10_000)) {
                    calculator in
                    let soon = try await bookings.createSession(capacity: 10, daysAhead: 1)
                    let later = try await bookings.createSession(capacity: 10, daysAhead: 5)
                    let full = try await bookings.createSession(capacity: 2, daysAhead: 6)
                    #expect(try await bookings.book(session: soon, adults: 8).status == 201)  // 80 %: not yet more than 80
                    #expect(try await bookings.book(session: later, adults: 9).status == 201)  // 90 % but 5 days away
                    #expect(try await bookings.book(session: full, adults: 2).status == 201)
                    try await expectEventually(within: 3) { try await db.changesDrained() }
                    let highDemandAlerts: PostgresQuery =
                        "SELECT count(*)::int FROM events WHERE type = 'alert' AND payload->>'kind' = 'high_demand'"
                    #expect(try await db.scalar(highDemandAlerts) == 0)

                    let booking = try await bookings.book(session: soon, adults: 1)
                    #expect(booking.status == 201)
                    try await expectEventually(within: 3) { try await db.scalar(highDemandAlerts) == 1 }
                    // Falling back under and rising again does not alert a second time.
                    let id = try #require(booking.string("id"))
                    #expect(try await bookings.post("/api/v1/bookings/\(id)/cancel", nil, key: UUID().uuidString).status == 200)
                    #expect(try await bookings.book(session: soon, adults: 1).status == 201)
                    // The clock tick finds a session that comes within 48 hours already that full.
                    _ = try await db.database.query(
                        "UPDATE sessions SET starts_at = now() + interval '30 hours', ends_at = now() + interval '31 hours' WHERE id = \(UUID(uuidString: later)!)"
                    )
                    try await expectEventually(within: 3) { try await db.scalar(highDemandAlerts) == 2 }
                    try await Task.sleep(for: .milliseconds(600))
                    #expect(try await db.scalar(highDemandAlerts) == 2, "once per session")
                    let alertedSessions = try await db.scalar(
                        "SELECT count(DISTINCT payload->'availability'->>'session_id')::int FROM events WHERE type = 'alert' AND payload->>'kind' = 'high_demand'"
                    )
                    #expect(alertedSessions == 2)

                    let listed = try await TestHTTP.send(.GET, calculator + "/api/v1/availability/alerts")
                    #expect(listed.status == 200)
                    let alerts = try #require(listed.json["alerts"] as? [[String: Any]])
                    let pairs = Set(
                        alerts.compactMap { alert -> String? in
                            guard let kind = alert["kind"] as? String, let session = alert["session"] as? [String: Any],
                                let id = session["session_id"] as? String
                            else { return nil }
                            return "\(kind) \(id)"
                        })
                    #expect(pairs == ["high_demand \(soon)", "low \(soon)", "high_demand \(later)", "low \(later)", "full \(full)"])
                    let onlyFull = try await TestHTTP.send(.GET, calculator + "/api/v1/availability/alerts?kind=full")
                    #expect((onlyFull.json["alerts"] as? [Any])?.count == 1)
                }
            }
        }
    }

    @Test func trendsAndPeakHoursCountTodaysBookings() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db) { calculator in
                    let first = try await bookings.createSession(capacity: 20, courseType: "CPR and AED")
                    let second = try await bookings.createSession(capacity: 20, courseType: "First Aid at Work")
                    for seats in [1, 2, 3] { #expect(try await bookings.book(session: first, adults: seats).status == 201) }
                    #expect(try await bookings.book(session: second, adults: 4).status == 201)

                    let trends = try await TestHTTP.send(
                        .GET, calculator + "/api/v1/availability/trends?days=7&course_type=CPR%20and%20AED")
                    #expect(trends.status == 200)
                    let days = try #require(trends.json["days"] as? [[String: Any]])
                    #expect(days.count == 7)
                    #expect(days.last?["date"] as? String == CalendarDay(date: Date()).description)
                    #expect(days.last?["bookings"] as? Int == 3)
                    #expect(days.last?["seats"] as? Int == 6)
                    #expect(days.dropLast().allSatisfy { $0["bookings"] as? Int == 0 })

                    let peaks = try await TestHTTP.send(.GET, calculator + "/api/v1/availability/peak-hours?days=1")
                    #expect(peaks.status == 200)
                    let hours = try #require(peaks.json["hours"] as? [[String: Any]])
                    #expect(hours.count == 24)
                    #expect(hours.compactMap { $0["seats"] as? Int }.reduce(0, +) == 10)
                    let rows = try await db.database.query(
                        "SELECT extract(hour FROM created_at AT TIME ZONE 'UTC')::int FROM bookings GROUP BY 1 ORDER BY sum(seats) DESC, 1 LIMIT 1"
                    )
                    #expect(peaks.int("peak_hour") == (try rows[0].decode(Int.self)))
                }
            }
        }
    }

    /// Totals of the sessions on the local days `from` to `to`.
    static func rowTotals(_ db: TestDatabase, from: CalendarDay, to: CalendarDay) async throws -> (
        sessions: Int, capacity: Int, booked: Int, held: Int
    ) {
        let rows = try await db.database.query(
            """
            SELECT count(*)::int, coalesce(sum(capacity), 0)::int, coalesce(sum(booked), 0)::int, coalesce(sum(held), 0)::int
            FROM sessions WHERE local_date BETWEEN \(from.description)::date AND \(to.description)::date
            """
        )
        let (sessions, capacity, booked, held) = try rows[0].decode((Int, Int, Int, Int).self)
        return (sessions, capacity, booked, held)
    }
}
