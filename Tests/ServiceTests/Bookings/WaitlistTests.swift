import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Bookings

/// The line of a full session: freed seats go to the waiting entries that fit, in joining
/// order, in the transaction that frees them; each offer ends with its booking.
@Suite struct WaitlistTests {
    @Test func aCancelOffersTheSeatToTheNextInLineAndDeclineAndAcceptMoveItOn() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 2)
            let first = try await harness.book(session: session, adults: 1, customer: "ada")
            #expect(try await harness.book(session: session, adults: 1, customer: "bob").status == 201)
            let cleo = try await harness.join(session, customer: "cleo")
            let dan = try await harness.join(session, customer: "dan")
            #expect(cleo.status == 201 && cleo.string("status") == "waiting" && cleo.int("position") == 1)
            #expect(dan.int("position") == 2)
            #expect(try await harness.waitlistRow(session) == (waiting: 2, waitingSeats: 2))

            // A cancel frees a seat: Cleo holds it at once, Dan moves up.
            let firstID = try #require(first.string("id"))
            #expect(try await harness.post("/api/v1/bookings/\(firstID)/cancel", nil).status == 200)
            let offered = try await harness.entry(cleo)
            #expect(offered.string("status") == "offered" && offered.json["position"] is NSNull)
            let offer = try #require(offered.json["offer"] as? [String: any Sendable])
            let offerBooking = try #require(offer["booking_id"] as? String)
            #expect(offer["expires_at"] is String)
            #expect(try await harness.entry(dan).int("position") == 1)
            let held = try await harness.get("/api/v1/bookings/\(offerBooking)")
            #expect(held.string("status") == "held" && held.string("customer_id") == "cleo")
            #expect(try await harness.sessionRow(session) == (capacity: 2, booked: 1, held: 1))
            #expect(try await harness.waitlistRow(session) == (waiting: 1, waitingSeats: 1))

            // A direct booking cannot take the offered seat.
            let direct = try await harness.book(session: session, adults: 1, customer: "eve")
            #expect(direct.status == 409 && direct.string("type")?.hasSuffix("/sold-out") == true)

            // Cleo declines: Dan is offered the seat.
            #expect(try await harness.post("/api/v1/bookings/\(offerBooking)/cancel", nil).status == 200)
            #expect(try await harness.entry(cleo).string("status") == "declined")
            let danOffered = try await harness.entry(dan)
            #expect(danOffered.string("status") == "offered")
            let danBooking = try #require((danOffered.json["offer"] as? [String: any Sendable])?["booking_id"] as? String)

            // Dan accepts by confirming.
            #expect(try await harness.post("/api/v1/bookings/\(danBooking)/confirm", nil).status == 200)
            let accepted = try await harness.entry(dan)
            #expect(accepted.string("status") == "accepted")
            #expect((accepted.json["offer"] as? [String: any Sendable])?["expires_at"] is NSNull)
            #expect(try await harness.sessionRow(session) == (capacity: 2, booked: 2, held: 0))
            #expect(try await harness.waitlistRow(session) == (waiting: 0, waitingSeats: 0))
            let kinds = try await harness.waitlistChanges(session).map(\.kind)
            #expect(
                kinds == [
                    "waitlist.joined", "waitlist.joined", "waitlist.offered", "waitlist.declined", "waitlist.offered", "waitlist.accepted",
                ])
        }
    }

    @Test func anExpiredOfferMovesTheSeatsOnAndAnEntryThatDoesNotFitKeepsItsPlace() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 3)
            let taken = try await harness.book(session: session, adults: 3, customer: "ada")
            let family = try await harness.join(session, customer: "fam", adults: 2)
            let solo = try await harness.join(session, customer: "solo", adults: 1)
            let another = try await harness.join(session, customer: "sam", adults: 1)
            // Capacity up by one: one seat free, the family of two does not fit, the next single does.
            #expect(try await harness.patch("/api/v1/sessions/\(session)", #"{"capacity": 4}"#).status == 200)
            #expect(try await harness.entry(family).string("status") == "waiting")
            #expect(try await harness.entry(family).int("position") == 1, "an entry that does not fit keeps its place")
            let offered = try await harness.entry(solo)
            #expect(offered.string("status") == "offered")
            #expect(try await harness.entry(another).int("position") == 2)
            // The offer runs out: the sweep expires it and the seat goes to the next that fits.
            let offerBooking = try #require((offered.json["offer"] as? [String: any Sendable])?["booking_id"] as? String)
            try await harness.db.database.query(
                "UPDATE bookings SET expires_at = now() - interval '1 second' WHERE id = \(UUID(uuidString: offerBooking)!)")
            await expectEventually(within: 5, "the expired offer ends") {
                (try? await harness.entry(solo).string("status")) == "expired"
            }
            #expect(try await harness.entry(another).string("status") == "offered")
            #expect(try await harness.entry(family).string("status") == "waiting")
            // The original booking cancelled: three free, the family of two fits now.
            #expect(try await harness.post("/api/v1/bookings/\(try #require(taken.string("id")))/cancel", nil).status == 200)
            #expect(try await harness.entry(family).string("status") == "offered")
            let row = try await harness.sessionRow(session)
            #expect(row.booked + row.held <= row.capacity)
        }
    }

    @Test func leavingTakesTheEntryOutOfLineAndLeavingAnOfferDeclinesIt() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 1)
            let first = try await harness.book(session: session, adults: 1, customer: "ada")
            let cleo = try await harness.join(session, customer: "cleo")
            let dan = try await harness.join(session, customer: "dan")
            let cleoID = try #require(cleo.string("id"))
            let left = try await harness.post("/api/v1/waitlist/\(cleoID)/leave", nil)
            #expect(left.status == 200 && left.string("status") == "left")
            #expect(
                try await harness.post("/api/v1/waitlist/\(cleoID)/leave", nil).string("status") == "left", "leaving again changes nothing")
            #expect(try await harness.entry(dan).int("position") == 1)
            #expect(try await harness.post("/api/v1/bookings/\(try #require(first.string("id")))/cancel", nil).status == 200)
            #expect(try await harness.entry(dan).string("status") == "offered")
            let declined = try await harness.post("/api/v1/waitlist/\(try #require(dan.string("id")))/leave", nil)
            #expect(declined.string("status") == "declined")
            #expect(try await harness.sessionRow(session) == (capacity: 1, booked: 0, held: 0))
            // Listed in line order, and by customer.
            let line = try await harness.get("/api/v1/sessions/\(session)/waitlist")
            #expect((line.json["entries"] as? [[String: any Sendable]])?.compactMap { $0["customer_id"] as? String } == ["cleo", "dan"])
            let mine = try await harness.get("/api/v1/waitlist?customer_id=dan")
            #expect(mine.int("count") == 1)
        }
    }

    @Test func cancellingTheSessionClosesItsLine() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 1)
            let first = try await harness.book(session: session, adults: 1, customer: "ada")
            let cleo = try await harness.join(session, customer: "cleo")
            let dan = try await harness.join(session, customer: "dan")
            #expect(try await harness.post("/api/v1/bookings/\(try #require(first.string("id")))/cancel", nil).status == 200)
            #expect(try await harness.patch("/api/v1/sessions/\(session)", #"{"status": "cancelled"}"#).status == 200)
            #expect(try await harness.entry(cleo).string("status") == "expired")
            #expect(try await harness.entry(dan).string("status") == "expired")
            #expect(try await harness.waitlistRow(session) == (waiting: 0, waitingSeats: 0))
            #expect(try await harness.sessionRow(session) == (capacity: 1, booked: 0, held: 0))
        }
    }

    @Test func aSessionThatStartsClosesItsLine() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 1)
            #expect(try await harness.book(session: session, adults: 1, customer: "ada").status == 201)
            let cleo = try await harness.join(session, customer: "cleo")
            try await harness.db.database.query(
                "UPDATE sessions SET starts_at = now() - interval '1 minute' WHERE id = \(UUID(uuidString: session)!)")
            await expectEventually(within: 5, "the sweep expires the entries of a started session") {
                (try? await harness.entry(cleo).string("status")) == "expired"
            }
            #expect(try await harness.waitlistRow(session) == (waiting: 0, waitingSeats: 0))
            #expect(try await harness.waitlistChanges(session).map(\.kind) == ["waitlist.joined", "waitlist.expired"])
        }
    }

    @Test func badJoinsAreProblemsAndChangeNothing() async throws {
        try await withBookings { harness in
            let open = try await harness.createSession(capacity: 4)
            let full = try await harness.createSession(capacity: 2)
            #expect(try await harness.book(session: full, adults: 2, customer: "ada").status == 201)
            #expect(try await harness.join(full, customer: "cleo").status == 201)
            let cancelled = try await harness.createSession(capacity: 1)
            #expect(try await harness.patch("/api/v1/sessions/\(cancelled)", #"{"status": "cancelled"}"#).status == 200)
            let before = try await harness.waitlistSnapshot()

            let cases: [(String, String, String, Int, String)] = [
                ("seats free", open, #"{"customer_id": "x", "adult_count": 2}"#, 409, "seats-available"),
                ("already waiting", full, #"{"customer_id": "cleo", "adult_count": 1}"#, 409, "already-waiting"),
                ("cancelled session", cancelled, #"{"customer_id": "x", "adult_count": 1}"#, 409, "session-not-bookable"),
                ("zero seats", full, #"{"customer_id": "x", "adult_count": 0}"#, 422, "invalid-request"),
                ("more than the capacity", full, #"{"customer_id": "x", "adult_count": 3}"#, 422, "invalid-request"),
                ("offer too short", full, #"{"customer_id": "x", "adult_count": 1, "offer_seconds": 10}"#, 422, "invalid-request"),
                ("unknown field", full, #"{"customer_id": "x", "adult_count": 1, "vip": true}"#, 422, "invalid-request"),
                ("unknown session", UUID().uuidString, #"{"customer_id": "x", "adult_count": 1}"#, 404, "not-found"),
                ("malformed session id", "not-a-uuid", #"{"customer_id": "x", "adult_count": 1}"#, 400, "bad-parameter"),
            ]
            for (name, session, body, status, slug) in cases {
                let answer = try await harness.post("/api/v1/sessions/\(session)/waitlist", body, key: UUID().uuidString)
                #expect(answer.status == status, "\(name): \(answer.text)")
                #expect(answer.contentType == "application/problem+json", "\(name)")
                #expect(answer.string("type")?.hasSuffix("/\(slug)") == true, "\(name): \(answer.string("type") ?? "")")
            }
            #expect(try await harness.get("/api/v1/waitlist/\(UUID().uuidString)").status == 404)
            #expect(try await harness.get("/api/v1/waitlist/nope").status == 400)
            #expect(try await harness.get("/api/v1/waitlist").status == 400, "customer_id is required")
            #expect(
                try await harness.post("/api/v1/sessions/\(full)/waitlist", #"{"customer_id": "y", "adult_count": 1}"#).status == 400,
                "an Idempotency-Key is required")
            #expect(try await harness.waitlistSnapshot() == before, "nothing changed")
        }
    }

    @Test func aRetriedJoinWithItsKeyIsAnsweredOnce() async throws {
        try await withBookings { harness in
            let full = try await harness.createSession(capacity: 1)
            #expect(try await harness.book(session: full, adults: 1, customer: "ada").status == 201)
            let key = UUID().uuidString
            let first = try await harness.join(full, customer: "cleo", key: key)
            let again = try await harness.join(full, customer: "cleo", key: key)
            #expect(first.status == 201 && again.status == 201 && again.string("id") == first.string("id"))
            #expect(again.headers.first(name: "Idempotent-Replayed") == "true")
            #expect(try await harness.waitlistRow(full) == (waiting: 1, waitingSeats: 1))
        }
    }
}

extension BookingsHarness {
    func join(_ session: String, customer: String, adults: Int = 1, key: String = UUID().uuidString) async throws -> TestResponse {
        try await post("/api/v1/sessions/\(session)/waitlist", #"{"customer_id": "\#(customer)", "adult_count": \#(adults)}"#, key: key)
    }

    /// The entry as the API has it now.
    func entry(_ joined: TestResponse) async throws -> TestResponse {
        guard let id = joined.string("id") else { throw HarnessError("no entry id in \(joined.text)") }
        return try await get("/api/v1/waitlist/\(id)")
    }

    func waitlistRow(_ id: String) async throws -> (waiting: Int, waitingSeats: Int) {
        let rows = try await db.database.query("SELECT waiting, waiting_seats FROM sessions WHERE id = \(UUID(uuidString: id)!)")
        return try rows[0].decode((Int, Int).self)
    }

    /// The session's waitlist changes in the order they were written.
    func waitlistChanges(_ id: String) async throws -> [(entry: UUID, kind: String)] {
        let rows = try await db.database.query(
            "SELECT waitlist_id, kind FROM changes WHERE session_id = \(UUID(uuidString: id)!) AND waitlist_id IS NOT NULL ORDER BY id")
        return try rows.map { try $0.decode((UUID, String).self) }.map { (entry: $0.0, kind: $0.1) }
    }

    /// Every entry, session count and change, to compare before and after a refused request.
    func waitlistSnapshot() async throws -> String {
        let rows = try await db.database.query(
            """
            SELECT (SELECT coalesce(string_agg(id::text || status, ',' ORDER BY id), '') FROM waitlist_entries)
                || '|' || (SELECT string_agg(id::text || waiting || '/' || waiting_seats || '/' || held || '/' || booked, ',' ORDER BY id) FROM sessions)
                || '|' || (SELECT count(*) FROM changes) || '|' || (SELECT count(*) FROM idempotency_keys)
            """)
        return try rows[0].decode(String.self)
    }
}
