import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Availability

/// Sessions on their venues' clocks: the local day and times in every payload, the local
/// day deciding every date filter, calendar day and `availability.{date}` topic, across both
/// changes of the clocks in London and New York and east of UTC+12.
@Suite(.timeLimit(.minutes(2))) struct LocalTimeTests {
    struct Case: Sendable {
        let name: String
        let zone: String
        let startsAt: String
        let endsAt: String
        let date: String
        let localStart: String
        let localEnd: String
    }

    static let cases = [
        // 00:30 on the night the clocks go forward, and a session across the change (3 h long, 02:00 never happens).
        Case(
            name: "london-spring", zone: "Europe/London", startsAt: "2027-03-28T00:30:00Z", endsAt: "2027-03-28T02:30:00Z",
            date: "2027-03-28", localStart: "2027-03-28T00:30:00+00:00", localEnd: "2027-03-28T03:30:00+01:00"),
        // 00:30 BST on the night they go back is still the 30th in UTC.
        Case(
            name: "london-autumn", zone: "Europe/London", startsAt: "2027-10-30T23:30:00Z", endsAt: "2027-10-31T02:30:00Z",
            date: "2027-10-31", localStart: "2027-10-31T00:30:00+01:00", localEnd: "2027-10-31T02:30:00+00:00"),
        Case(
            name: "new-york-spring", zone: "America/New_York", startsAt: "2027-03-14T05:30:00Z", endsAt: "2027-03-14T08:30:00Z",
            date: "2027-03-14", localStart: "2027-03-14T00:30:00-05:00", localEnd: "2027-03-14T04:30:00-04:00"),
        // An evening class: the next day in UTC.
        Case(
            name: "new-york-autumn", zone: "America/New_York", startsAt: "2027-11-07T03:30:00Z", endsAt: "2027-11-07T08:00:00Z",
            date: "2027-11-06", localStart: "2027-11-06T23:30:00-04:00", localEnd: "2027-11-07T03:00:00-05:00"),
        Case(
            name: "kiritimati", zone: "Pacific/Kiritimati", startsAt: "2027-01-10T19:00:00Z", endsAt: "2027-01-10T22:00:00Z",
            date: "2027-01-11", localStart: "2027-01-11T09:00:00+14:00", localEnd: "2027-01-11T12:00:00+14:00"),
    ]

    static func body(_ test: Case) -> String {
        #"{"course_type": "Local \#(test.name)", "location": "Venue", "starts_at": "\#(test.startsAt)", "ends_at": "\#(test.endsAt)", "time_zone": "\#(test.zone)"}"#
    }

    @Test func everyPayloadCarriesTheVenuesDayAndClock() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db, pollInterval: .milliseconds(200)) { calculator in
                    for test in Self.cases {
                        let created = try await bookings.post("/api/v1/sessions", Self.body(test))
                        #expect(created.status == 201, "\(test.name): \(created.text)")
                        let id = try #require(created.string("id"))
                        for (what, object) in [("session", created.json), ("read", try await bookings.get("/api/v1/sessions/\(id)").json)] {
                            #expect(object["time_zone"] as? String == test.zone, "\(test.name) \(what)")
                            #expect(object["date"] as? String == test.date, "\(test.name) \(what)")
                            #expect(object["local_start"] as? String == test.localStart, "\(test.name) \(what)")
                            #expect(object["local_end"] as? String == test.localEnd, "\(test.name) \(what)")
                            #expect(object["starts_at"] as? String == test.startsAt, "\(test.name) \(what): UTC as it was")
                        }
                        let day = try await TestHTTP.send(.GET, calculator + "/api/v1/availability?date=\(test.date)")
                        let sessions = try #require(day.json["sessions"] as? [[String: Any]])
                        let listed = try #require(sessions.first { $0["session_id"] as? String == id }, "\(test.name) on its local day")
                        #expect(listed["local_start"] as? String == test.localStart && listed["date"] as? String == test.date)
                        // The session's UTC day, where it differs, does not list it.
                        let utcDay = String(test.startsAt.prefix(10))
                        if utcDay != test.date {
                            let other = try await TestHTTP.send(.GET, calculator + "/api/v1/availability?date=\(utcDay)")
                            let ids = (other.json["sessions"] as? [[String: Any]] ?? []).compactMap { $0["session_id"] as? String }
                            #expect(!ids.contains(id), "\(test.name) is not on its UTC day \(utcDay)")
                        }
                        // Bookings lists it by the same local days.
                        let listing = try await bookings.get("/api/v1/sessions?from=\(test.date)&to=\(test.date)")
                        #expect(
                            (listing.json["sessions"] as? [[String: Any]])?.contains { $0["id"] as? String == id } == true, "\(test.name)")
                    }
                    try await expectEventually(within: 5) { try await db.changesDrained() }
                    // Each session's event: on its local day's topic, with the venue's clock.
                    for test in Self.cases {
                        let rows = try await db.database.query(
                            """
                            SELECT topics, payload::text FROM events WHERE type = 'availability.updated'
                            AND payload->>'course_type' = \("Local \(test.name)") ORDER BY id DESC LIMIT 1
                            """)
                        let (topics, payload) = try #require(rows.first).decode(([String], String).self)
                        #expect(topics.contains(Topic.day(CalendarDay(test.date)!)), "\(test.name): \(topics)")
                        let object = try JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] ?? [:]
                        #expect(object["date"] as? String == test.date && object["time_zone"] as? String == test.zone)
                        #expect(object["local_start"] as? String == test.localStart && object["local_end"] as? String == test.localEnd)
                    }
                }
            }
        }
    }

    /// London at 09:00 and New York at 19:00 on the same local day: one calendar day holds
    /// both, each at its own clock, though New York's is already the next day in UTC.
    @Test func aCalendarDayHoldsTwoZonesEachOnItsOwnClock() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db) { calculator in
                    let london =
                        #"{"course_type": "CPR and AED", "location": "London", "starts_at": "2027-01-11T09:00:00Z", "ends_at": "2027-01-11T12:00:00Z", "time_zone": "Europe/London"}"#
                    let newYork =
                        #"{"course_type": "CPR and AED", "location": "New York", "starts_at": "2027-01-12T00:00:00Z", "ends_at": "2027-01-12T02:00:00Z", "time_zone": "America/New_York"}"#
                    for body in [london, newYork] { #expect(try await bookings.post("/api/v1/sessions", body).status == 201) }
                    for view in ["day", "week", "month"] {
                        let answer = try await TestHTTP.send(.GET, calculator + "/api/v1/calendar?view=\(view)&date=2027-01-11")
                        let entries = try #require(answer.json["entries"] as? [[String: Any]])
                        let byLocation = Dictionary(
                            uniqueKeysWithValues: entries.compactMap { entry in
                                (entry["location"] as? String).map { ($0, entry) }
                            })
                        #expect(byLocation["London"]?["local_start"] as? String == "2027-01-11T09:00:00+00:00", "\(view)")
                        #expect(byLocation["New York"]?["local_start"] as? String == "2027-01-11T19:00:00-05:00", "\(view)")
                        #expect(byLocation.values.allSatisfy { $0["date"] as? String == "2027-01-11" }, "\(view)")
                        if view == "day" { #expect(answer.json["topics"] as? [String] == ["availability.2027-01-11"]) }
                    }
                    let next = try await TestHTTP.send(.GET, calculator + "/api/v1/calendar?view=day&date=2027-01-12")
                    #expect((next.json["entries"] as? [[String: Any]])?.isEmpty == true, "nothing on the 12th, local")
                    let stats = try await TestHTTP.send(.GET, calculator + "/api/v1/availability/stats?date=2027-01-11")
                    #expect((stats.json["totals"] as? [String: Any])?["sessions"] as? Int == 2)
                }
            }
        }
    }

    /// Bookings counted by the hour of the venue's clock: a booking made now for a New York
    /// session is in New York's current hour.
    @Test func peakHoursAndTrendsGoByTheVenuesClock() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db) { calculator in
                    let request = SessionRequest(
                        courseType: "Night class", location: "New York", capacity: 10, startsAt: Date().addingTimeInterval(5 * 86_400),
                        timeZone: "America/New_York")
                    let session = try #require(try await bookings.post("/api/v1/sessions", request.body).string("id"))
                    let before = Date()
                    #expect(try await bookings.book(session: session, adults: 3).status == 201)
                    let newYork = try #require(VenueTime.zone(named: "America/New_York"))
                    let hour = Int(VenueTime.rfc3339(before, in: newYork).dropFirst(11).prefix(2))!
                    let peak = try await TestHTTP.send(
                        .GET, calculator + "/api/v1/availability/peak-hours?course_type=Night%20class&days=2")
                    let hours = try #require(peak.json["hours"] as? [[String: Any]])
                    #expect(hours.first { $0["hour"] as? Int == hour }?["seats"] as? Int == 3, "booked in New York's hour \(hour)")
                    #expect(peak.json["peak_hour"] as? Int == hour)
                    let trends = try await TestHTTP.send(.GET, calculator + "/api/v1/availability/trends?course_type=Night%20class&days=3")
                    let days = try #require(trends.json["days"] as? [[String: Any]])
                    let localDay = VenueTime.day(of: before, in: newYork).description
                    #expect(days.first { $0["date"] as? String == localDay }?["seats"] as? Int == 3, "made on New York's \(localDay)")
                }
            }
        }
    }

    /// An unknown zone is a 422 naming `time_zone`, and nothing is created or changed.
    @Test func unknownZonesAreRefusedAndChangeNothing() async throws {
        try await withBookings { bookings in
            for zone in ["Mars/Olympus", "", "europe/london", "+01:00", "Europe/London; DROP TABLE sessions"] {
                let body =
                    #"{"course_type": "X", "location": "Y", "starts_at": "2027-01-11T09:00:00Z", "ends_at": "2027-01-11T10:00:00Z", "time_zone": "\#(zone)"}"#
                let answer = try await bookings.post("/api/v1/sessions", body)
                #expect(answer.status == 422, "\(zone): \(answer.status)")
                #expect(answer.headers.first(name: "Content-Type")?.hasPrefix("application/problem+json") == true)
                let errors = answer.json["errors"] as? [[String: Any]] ?? []
                #expect(errors.contains { $0["field"] as? String == "time_zone" }, "\(zone): \(answer.text)")
            }
            #expect(try await bookings.db.scalar("SELECT count(*)::int FROM sessions") == 0)
            let session = try await bookings.createSession()
            let before = try await bookings.get("/api/v1/sessions/\(session)").json
            let patched = try await bookings.patch("/api/v1/sessions/\(session)", #"{"time_zone": "Atlantis/Capital"}"#)
            #expect(patched.status == 422 && patched.text.contains("time_zone"))
            let after = try await bookings.get("/api/v1/sessions/\(session)").json
            #expect(
                after["time_zone"] as? String == before["time_zone"] as? String && after["version"] as? Int == before["version"] as? Int)
            // A good zone moves the local day and times with it.
            let moved = try await bookings.patch("/api/v1/sessions/\(session)", #"{"time_zone": "Pacific/Kiritimati"}"#)
            #expect(moved.status == 200 && moved.string("time_zone") == "Pacific/Kiritimati")
            #expect(moved.string("local_start")?.hasSuffix("+14:00") == true)
            let bad = try await bookings.get("/api/v1/sessions?from=2027-13-01")
            #expect(bad.status == 400 && bad.text.contains("from"))
        }
    }

    /// Every zone a session may name, PostgreSQL knows too (it computes the local day).
    @Test func postgreSQLKnowsEveryZoneASessionMayName() async throws {
        try await TestDatabase.with { db in
            let names = Array(VenueTime.names)
            let unknown = try await db.database.query(
                "SELECT n FROM unnest(\(names)::text[]) AS n WHERE n NOT IN (SELECT name FROM pg_timezone_names)"
            ).map { try $0.decode(String.self) }
            #expect(unknown.isEmpty, "PostgreSQL does not know \(unknown)")
            #expect(names.count > 300)
        }
    }
}
