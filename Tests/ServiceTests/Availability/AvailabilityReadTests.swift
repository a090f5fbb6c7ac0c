import Foundation
import Shared
import TestSupport
import Testing

@testable import Availability

@Suite(.timeLimit(.minutes(2))) struct AvailabilityReadTests {
    @Test func dayAnswerReflectsRowsLogHeadAndETag() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db) { calculator in
                    let session = try await bookings.createSession(capacity: 12, daysAhead: 5)
                    #expect(try await bookings.book(session: session, adults: 2).status == 201)
                    try await expectEventually(within: 3) { try await db.changesDrained() }
                    let day = CalendarDay(date: Date().addingTimeInterval(5 * 86_400)).description
                    let first = try await TestHTTP.send(.GET, calculator + "/api/v1/availability?date=\(day)")
                    #expect(first.status == 200)
                    let sessions = try #require(first.json["sessions"] as? [[String: Any]])
                    #expect(sessions.count == 1)
                    #expect(sessions.first?["booked"] as? Int == 2)
                    #expect(sessions.first?["available"] as? Int == 10)
                    #expect(sessions.first?["level"] as? String == "open")
                    #expect(first.int("last_event_id") == (try await db.scalar("SELECT max(id)::int FROM events")))
                    let etag = try #require(first.headers.first(name: "ETag"))

                    let unchanged = try await TestHTTP.send(
                        .GET, calculator + "/api/v1/availability?date=\(day)", headers: [("If-None-Match", etag)])
                    #expect(unchanged.status == 304)
                    #expect(unchanged.body.isEmpty)

                    #expect(try await bookings.book(session: session, adults: 8).status == 201)
                    let changed = try await TestHTTP.send(
                        .GET, calculator + "/api/v1/availability?date=\(day)", headers: [("If-None-Match", etag)])
                    #expect(changed.status == 200, "a booking changes the answer, so the old ETag no longer matches")
                    #expect(changed.headers.first(name: "ETag") != etag)
                    #expect((changed.json["sessions"] as? [[String: Any]])?.first?["level"] as? String == "low")

                    let one = try await TestHTTP.send(.GET, calculator + "/api/v1/availability/sessions/\(session)")
                    #expect(one.status == 200)
                    #expect(one.int("booked") == 10)
                    #expect(one.int("last_event_id") != nil)
                }
            }
        }
    }

    @Test func malformedQueriesAreProblems() async throws {
        try await TestDatabase.with { db in
            try await withCalculator(on: db) { calculator in
                let badDate = try await TestHTTP.send(.GET, calculator + "/api/v1/availability?date=2026-02-30")
                #expect(badDate.status == 400)
                #expect(badDate.contentType == "application/problem+json")
                #expect((badDate.json["errors"] as? [[String: Any]])?.first?["field"] as? String == "date")
                #expect(try await TestHTTP.send(.GET, calculator + "/api/v1/availability/sessions/nope").status == 400)
                #expect(try await TestHTTP.send(.GET, calculator + "/api/v1/availability/sessions/\(UUID())").status == 404)
            }
        }
    }
}
