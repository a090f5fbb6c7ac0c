import Foundation
import NIOHTTP1
import Shared
import TestSupport
import Testing

@testable import Bookings

/// Invariant 5: every rejected request leaves the database exactly as it was and answers
/// with a problem+json that names what was wrong.
@Suite(.serialized, .timeLimit(.minutes(2))) struct BadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let method: String
        let path: String
        let body: String?
        var contentType = "application/json"
        var key: String? = "bad-input-key"
        let status: Int
        let field: String?
        var testDescription: String { name }
    }

    static let session = "{SESSION}"
    static let future = RFC3339.string(from: Date().addingTimeInterval(86_400 * 5))
    static let futureEnd = RFC3339.string(from: Date().addingTimeInterval(86_400 * 5 + 3600))

    static let cases: [Case] = [
        Case(name: "malformed JSON", method: "POST", path: "/api/v1/bookings", body: "{\"session_id\": ", status: 400, field: nil),
        Case(name: "JSON array", method: "POST", path: "/api/v1/bookings", body: "[]", status: 400, field: nil),
        Case(
            name: "wrong type", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(session)", "customer_id": "c", "adult_count": "two"}"#, status: 422, field: "adult_count"),
        Case(
            name: "missing field", method: "POST", path: "/api/v1/bookings", body: #"{"customer_id": "c", "adult_count": 1}"#, status: 422,
            field: "session_id"),
        Case(
            name: "unknown field", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(session)", "customer_id": "c", "adult_count": 1, "vip": true}"#, status: 422, field: "vip"),
        Case(
            name: "negative seats", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(session)", "customer_id": "c", "adult_count": -1}"#, status: 422, field: "adult_count"),
        Case(
            name: "zero seats", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(session)", "customer_id": "c", "adult_count": 0, "child_count": 0}"#, status: 422,
            field: "adult_count"),
        Case(
            name: "more seats than capacity", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(session)", "customer_id": "c", "adult_count": 10, "child_count": 5}"#, status: 422,
            field: "adult_count"),
        Case(
            name: "malformed session id", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "not-a-uuid", "customer_id": "c", "adult_count": 1}"#, status: 422, field: "session_id"),
        Case(
            name: "unknown session id", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(UUID().uuidString)", "customer_id": "c", "adult_count": 1}"#, status: 422, field: "session_id"),
        Case(
            name: "bad customer id", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(session)", "customer_id": "a b", "adult_count": 1}"#, status: 422, field: "customer_id"),
        Case(
            name: "hold too short", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(session)", "customer_id": "c", "adult_count": 1, "hold_seconds": 5}"#, status: 422,
            field: "hold_seconds"),
        Case(
            name: "null field", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(session)", "customer_id": null, "adult_count": 1}"#, status: 422, field: "customer_id"),
        Case(
            name: "wrong content type", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(session)", "customer_id": "c", "adult_count": 1}"#, contentType: "text/plain", status: 415,
            field: nil),
        Case(
            name: "body over 64 KiB", method: "POST", path: "/api/v1/bookings",
            body: #"{"customer_id": ""# + String(repeating: "x", count: 70_000) + #""}"#, status: 413, field: nil),
        Case(
            name: "bad idempotency key", method: "POST", path: "/api/v1/bookings",
            body: #"{"session_id": "\#(session)", "customer_id": "c", "adult_count": 1}"#, key: String(repeating: "k", count: 300),
            status: 400, field: "Idempotency-Key"),
        Case(
            name: "session start after end", method: "POST", path: "/api/v1/sessions",
            body: #"{"course_type": "CPR", "location": "A", "starts_at": "\#(futureEnd)", "ends_at": "\#(future)"}"#, status: 422,
            field: "ends_at"),
        Case(
            name: "session date out of range", method: "POST", path: "/api/v1/sessions",
            body: #"{"course_type": "CPR", "location": "A", "starts_at": "1900-01-01T09:00:00Z", "ends_at": "1900-01-01T10:00:00Z"}"#,
            status: 422, field: "starts_at"),
        Case(
            name: "session malformed date", method: "POST", path: "/api/v1/sessions",
            body: #"{"course_type": "CPR", "location": "A", "starts_at": "tomorrow", "ends_at": "\#(future)"}"#, status: 422,
            field: "starts_at"),
        Case(
            name: "session zero capacity", method: "POST", path: "/api/v1/sessions",
            body: #"{"course_type": "CPR", "location": "A", "starts_at": "\#(future)", "ends_at": "\#(futureEnd)", "capacity": 0}"#,
            status: 422, field: "capacity"),
        Case(
            name: "session empty course type", method: "POST", path: "/api/v1/sessions",
            body: #"{"course_type": " ", "location": "A", "starts_at": "\#(future)", "ends_at": "\#(futureEnd)"}"#, status: 422,
            field: "course_type"),
        Case(
            name: "patch capacity below booked", method: "PATCH", path: "/api/v1/sessions/\(session)", body: #"{"capacity": 1}"#,
            status: 409, field: nil),
        Case(
            name: "patch unknown field", method: "PATCH", path: "/api/v1/sessions/\(session)", body: #"{"booked": 0}"#, status: 422,
            field: "booked"),
        Case(name: "patch nothing", method: "PATCH", path: "/api/v1/sessions/\(session)", body: "{}", status: 422, field: "body"),
        // PostgreSQL's text cannot hold a NUL: refused as a field, never a 500 (schemathesis found it).
        Case(
            name: "patch notes with a NUL", method: "PATCH", path: "/api/v1/sessions/\(session)", body: #"{"notes": "\u00b7\u0000"}"#,
            status: 422, field: "notes"),
        Case(
            name: "list filtered by a label with a NUL", method: "GET", path: "/api/v1/sessions?course_type=a%00b", body: nil,
            status: 400, field: "course_type"),
        Case(
            name: "session notes with a control character", method: "POST", path: "/api/v1/sessions",
            body: #"{"course_type": "CPR", "location": "A", "starts_at": "\#(future)", "ends_at": "\#(futureEnd)", "notes": "a\u0007b"}"#,
            status: 422, field: "notes"),
        Case(name: "patch malformed id", method: "PATCH", path: "/api/v1/sessions/123", body: #"{"notes": "x"}"#, status: 400, field: "id"),
        Case(
            name: "patch unknown id", method: "PATCH", path: "/api/v1/sessions/\(UUID().uuidString)", body: #"{"notes": "x"}"#, status: 404,
            field: nil),
        Case(
            name: "confirm unknown booking", method: "POST", path: "/api/v1/bookings/\(UUID().uuidString)/confirm", body: nil, status: 404,
            field: nil),
        Case(name: "cancel malformed id", method: "POST", path: "/api/v1/bookings/xyz/cancel", body: nil, status: 400, field: "id"),
        Case(
            name: "reschedule to unknown session", method: "POST", path: "/api/v1/bookings/{BOOKING}/reschedule",
            body: #"{"session_id": "\#(UUID().uuidString)"}"#, status: 422, field: "session_id"),
        Case(
            name: "list sessions bad date", method: "GET", path: "/api/v1/sessions?from=2026-13-01", body: nil, status: 400, field: "from"),
        Case(name: "list bookings without filter", method: "GET", path: "/api/v1/bookings", body: nil, status: 400, field: "customer_id"),
    ]

    @Test(arguments: cases)
    func rejectedRequestChangesNothing(_ testCase: Case) async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 12)
            let booking = try #require(try await harness.book(session: session, adults: 2).string("id"))
            let before = try await harness.db.contentDigest()
            let path = testCase.path.replacingOccurrences(of: Self.session, with: session).replacingOccurrences(
                of: "{BOOKING}", with: booking)
            let body = testCase.body?.replacingOccurrences(of: Self.session, with: session)
            var headers = [harness.auth, ("Content-Type", testCase.contentType)]
            if let key = testCase.key { headers.append(("Idempotency-Key", key)) }
            let response = try await TestHTTP.send(.init(rawValue: testCase.method), harness.baseURL + path, headers: headers, body: body)
            #expect(response.status == testCase.status, "\(response.text)")
            #expect(response.contentType == "application/problem+json")
            #expect(response.int("status") == testCase.status)
            #expect(response.string("type")?.hasPrefix("https://vacancy.dev/problems/") == true)
            #expect(response.string("title")?.isEmpty == false)
            #expect(response.string("detail")?.isEmpty == false)
            if let field = testCase.field {
                let fields = (response.json["errors"] as? [[String: Any]])?.compactMap { $0["field"] as? String } ?? []
                #expect(fields.contains(field), "errors must name \(field): \(response.text)")
            }
            #expect(try await harness.db.contentDigest() == before, "the database must be exactly as before")
        }
    }

    /// A path the service has, asked with a method it does not take: 405 with `Allow` (a
    /// problem, nothing touched); a path it does not have stays 404.
    @Test func aMethodAPathDoesNotTakeIs405WithAllow() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession()
            let booking = try await harness.book(session: session, adults: 1)
            let bookingID = try #require(booking.json["id"] as? String)
            let cases: [(HTTPMethod, String, String)] = [
                (.PUT, "/api/v1/sessions", "GET, POST"),
                (.DELETE, "/api/v1/sessions/\(session)", "GET, PATCH"),
                (.DELETE, "/api/v1/bookings/\(bookingID)", "GET"),
                (.GET, "/api/v1/bookings/\(bookingID)/cancel", "POST"),
                (.RAW(value: "TRACE"), "/api/v1/tokens", "POST"),
                (.POST, "/healthz", "GET"),
            ]
            for (method, path, allow) in cases {
                let response = try await TestHTTP.send(method, harness.baseURL + path, headers: [harness.auth])
                #expect(response.status == 405, "\(method) \(path)")
                #expect(response.headers.first(name: "Allow") == allow, "\(method) \(path)")
                #expect(response.contentType == "application/problem+json")
                #expect(response.json["type"] as? String == Problem.typeBase + "method-not-allowed")
            }
            #expect(try await harness.get("/api/v1/sessions/\(session)").status == 200, "the DELETE changed nothing")
            let status = try #require(booking.json["status"] as? String)
            #expect(try await harness.get("/api/v1/bookings/\(bookingID)").json["status"] as? String == status)
            let missing = try await TestHTTP.send(.DELETE, harness.baseURL + "/api/v1/nothing-here", headers: [harness.auth])
            #expect(missing.status == 404)
            #expect(missing.headers.first(name: "Allow") == nil)
        }
    }

    @Test func missingOrWrongAPIKeyIsUnauthorized() async throws {
        try await withBookings { harness in
            let none = try await TestHTTP.send(.GET, harness.baseURL + "/api/v1/sessions")
            #expect(none.status == 401)
            #expect(none.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
            let wrong = try await TestHTTP.send(
                .GET, harness.baseURL + "/api/v1/sessions", headers: [("Authorization", "Bearer nope-nope-nope")])
            #expect(wrong.status == 401)
            #expect(wrong.headers.first(name: "WWW-Authenticate")?.contains("invalid_token") == true)
            #expect(try await TestHTTP.send(.GET, harness.baseURL + "/healthz").status == 200)
        }
    }
}
