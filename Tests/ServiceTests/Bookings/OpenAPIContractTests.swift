import Foundation
import Shared
import TestSupport
import Testing

@testable import Bookings

/// `/openapi.yaml` stays true: every response of a walk through the whole API (successes
/// and refusals) must be one the document describes.
@Suite(.timeLimit(.minutes(2))) struct OpenAPIContractTests {
    @Test func everyResponseMatchesTheServedDocument() async throws {
        try await withBookings { harness in
            let served = try await TestHTTP.send(.GET, harness.baseURL + "/openapi.yaml")
            #expect(served.status == 200)
            let contract = try OpenAPIContract(yaml: served.text)

            var exchanges: [(method: String, path: String, response: TestResponse)] = []
            func record(_ method: String, _ path: String, _ response: TestResponse) {
                exchanges.append((method, path, response))
            }
            let sessionA = try await harness.createSession(capacity: 3)
            let sessionB = try await harness.createSession(capacity: 12, daysAhead: 9)
            record("GET", "/api/v1/sessions/\(sessionA)", try await harness.get("/api/v1/sessions/\(sessionA)"))
            record("GET", "/api/v1/sessions/x", try await harness.get("/api/v1/sessions/x"))
            record("GET", "/api/v1/sessions/\(UUID().uuidString)", try await harness.get("/api/v1/sessions/\(UUID().uuidString)"))
            record("GET", "/api/v1/sessions", try await harness.get("/api/v1/sessions?from=2000-01-01&to=2000-12-31"))
            record("GET", "/api/v1/sessions", try await harness.get("/api/v1/sessions?status=bogus"))
            let booked = try await harness.book(session: sessionA, adults: 2, children: 1)
            record("POST", "/api/v1/bookings", booked)
            record("POST", "/api/v1/bookings", try await harness.book(session: sessionA, adults: 1))
            record("POST", "/api/v1/bookings", try await harness.post("/api/v1/bookings", "{}", key: "k"))
            record("POST", "/api/v1/bookings", try await harness.post("/api/v1/bookings", "{"))
            let hold = try await harness.book(session: sessionB, adults: 1, holdSeconds: 300)
            record("POST", "/api/v1/bookings", hold)
            let holdID = try #require(hold.string("id"))
            let bookingID = try #require(booked.string("id"))
            record("GET", "/api/v1/bookings/\(holdID)", try await harness.get("/api/v1/bookings/\(holdID)"))
            record("GET", "/api/v1/bookings", try await harness.get("/api/v1/bookings?customer_id=customer-1"))
            record("GET", "/api/v1/bookings", try await harness.get("/api/v1/bookings"))
            record("POST", "/api/v1/bookings/\(holdID)/confirm", try await harness.post("/api/v1/bookings/\(holdID)/confirm", nil))
            record(
                "POST", "/api/v1/bookings/\(bookingID)/reschedule",
                try await harness.post("/api/v1/bookings/\(bookingID)/reschedule", #"{"session_id": "\#(sessionB)"}"#))
            record(
                "POST", "/api/v1/bookings/\(bookingID)/reschedule",
                try await harness.post("/api/v1/bookings/\(bookingID)/reschedule", #"{"session_id": "\#(sessionB)"}"#))
            record("POST", "/api/v1/bookings/\(bookingID)/cancel", try await harness.post("/api/v1/bookings/\(bookingID)/cancel", nil))
            record("POST", "/api/v1/bookings/\(bookingID)/confirm", try await harness.post("/api/v1/bookings/\(bookingID)/confirm", nil))
            record("PATCH", "/api/v1/sessions/\(sessionB)", try await harness.patch("/api/v1/sessions/\(sessionB)", #"{"capacity": 1}"#))
            record(
                "PATCH", "/api/v1/sessions/\(sessionB)",
                try await harness.patch("/api/v1/sessions/\(sessionB)", #"{"notes": "bring a pen", "status": "cancelled"}"#))
            record("GET", "/api/v1/sessions", try await TestHTTP.send(.GET, harness.baseURL + "/api/v1/sessions"))
            record(
                "POST", "/api/v1/tokens",
                try await harness.post("/api/v1/tokens", #"{"sub": "alice", "topics": ["user.alice"], "ttl_seconds": 60}"#))
            record("POST", "/api/v1/tokens", try await harness.post("/api/v1/tokens", #"{"sub": "alice", "topics": ["nope"]}"#))
            // The waitlist of a full session: join (and refusals), look, an offer, leave.
            let full = try await harness.createSession(capacity: 1, daysAhead: 4)
            let seat = try await harness.book(session: full, adults: 1, customer: "ada")
            let joined = try await harness.join(full, customer: "cleo")
            record("POST", "/api/v1/sessions/\(full)/waitlist", joined)
            record("POST", "/api/v1/sessions/\(full)/waitlist", try await harness.join(full, customer: "cleo"))
            record("POST", "/api/v1/sessions/\(sessionA)/waitlist", try await harness.join(sessionA, customer: "dan", adults: 9))
            record("POST", "/api/v1/sessions/\(full)/waitlist", try await harness.join(full, customer: "dan", adults: 0))
            record("POST", "/api/v1/sessions/x/waitlist", try await harness.join("x", customer: "dan"))
            let dan = try await harness.join(full, customer: "dan")
            record("POST", "/api/v1/sessions/\(full)/waitlist", dan)
            record(
                "POST", "/api/v1/bookings/\(try #require(seat.string("id")))/cancel",
                try await harness.post("/api/v1/bookings/\(try #require(seat.string("id")))/cancel", nil))
            let cleoID = try #require(joined.string("id"))
            record("GET", "/api/v1/waitlist/\(cleoID)", try await harness.get("/api/v1/waitlist/\(cleoID)"))
            record("GET", "/api/v1/waitlist/\(UUID().uuidString)", try await harness.get("/api/v1/waitlist/\(UUID().uuidString)"))
            record("GET", "/api/v1/sessions/\(full)/waitlist", try await harness.get("/api/v1/sessions/\(full)/waitlist"))
            record("GET", "/api/v1/sessions/\(full)/waitlist", try await harness.get("/api/v1/sessions/\(full)/waitlist?status=nope"))
            record("GET", "/api/v1/waitlist", try await harness.get("/api/v1/waitlist?customer_id=cleo"))
            record("GET", "/api/v1/waitlist", try await harness.get("/api/v1/waitlist"))
            let danID = try #require(dan.string("id"))
            record("POST", "/api/v1/waitlist/\(danID)/leave", try await harness.post("/api/v1/waitlist/\(danID)/leave", nil))
            record("POST", "/api/v1/waitlist/\(cleoID)/leave", try await harness.post("/api/v1/waitlist/\(cleoID)/leave", nil))
            record("GET", "/healthz", try await TestHTTP.send(.GET, harness.baseURL + "/healthz"))
            record("GET", "/readyz", try await TestHTTP.send(.GET, harness.baseURL + "/readyz"))

            let statuses = Set(exchanges.map(\.response.status))
            #expect(statuses.isSuperset(of: [200, 201, 400, 401, 404, 409, 422]), "the walk covers successes and refusals")
            for exchange in exchanges {
                let problems = contract.violations(
                    method: exchange.method, path: exchange.path, status: exchange.response.status,
                    contentType: exchange.response.contentType, body: exchange.response.body
                )
                #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
            }
        }
    }

    @Test func contractCheckCatchesAnUndocumentedField() throws {
        let contract = try OpenAPIContract(yaml: OpenAPIDocument.bookings.yaml)
        let body = Data(#"{"count": 0, "sessions": [], "extra": true}"#.utf8)
        let problems = contract.violations(
            method: "GET", path: "/api/v1/sessions", status: 200, contentType: "application/json", body: body)
        #expect(problems.contains { $0.contains("undocumented property extra") })
        let wrongType = contract.violations(
            method: "GET", path: "/api/v1/sessions", status: 200, contentType: "application/json",
            body: Data(#"{"count": "zero", "sessions": [{"id": "not-a-uuid"}]}"#.utf8)
        )
        #expect(wrongType.contains { $0.contains("expected integer") })
        #expect(wrongType.contains { $0.contains("missing required course_type") })
        let undocumentedStatus = contract.violations(
            method: "GET", path: "/api/v1/sessions", status: 418, contentType: "application/json", body: Data("{}".utf8))
        #expect(!undocumentedStatus.isEmpty)
    }
}
