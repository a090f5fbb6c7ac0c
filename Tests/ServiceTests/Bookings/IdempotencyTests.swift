import Foundation
import Shared
import TestSupport
import Testing

@testable import Bookings

@Suite(.timeLimit(.minutes(2))) struct IdempotencyTests {
    @Test func sameKeyAndBodyReplaysTheStoredResponse() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession()
            let first = try await harness.book(session: session, adults: 2, key: "order-42")
            let second = try await harness.book(session: session, adults: 2, key: "order-42")
            #expect(first.status == 201)
            #expect(second.status == 201)
            #expect(second.body == first.body, "the replay is the stored response, byte for byte")
            #expect(second.headers.first(name: "Idempotent-Replayed") == "true")
            #expect(first.headers.first(name: "Location") == "/api/v1/bookings/\(first.string("id") ?? "?")")
            #expect(second.headers.first(name: "Location") == first.headers.first(name: "Location"))
            #expect(try await harness.db.scalar("SELECT count(*)::int FROM bookings") == 1)
            #expect(try await harness.sessionRow(session).booked == 2)
        }
    }

    @Test func sameKeyWithOtherBodyIsRefused() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession()
            #expect(try await harness.book(session: session, adults: 2, key: "order-7").status == 201)
            let before = try await harness.db.contentDigest()
            let other = try await harness.book(session: session, adults: 3, key: "order-7")
            #expect(other.status == 422)
            #expect(other.string("type")?.hasSuffix("/idempotency-key-reused") == true)
            #expect(try await harness.db.contentDigest() == before)
        }
    }

    @Test func concurrentSameKeyBooksOnce() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession()
            let responses = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await harness.book(session: session, adults: 1, key: "same-key") }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let created = responses.filter { $0.status == 201 }
            #expect(!created.isEmpty)
            #expect(Set(created.map(\.body)).count == 1, "every 201 is the one stored response")
            #expect(
                responses.allSatisfy {
                    $0.status == 201 || ($0.status == 409 && $0.string("type")?.hasSuffix("/idempotency-key-in-flight") == true)
                })
            #expect(try await harness.db.scalar("SELECT count(*)::int FROM bookings") == 1)
            #expect(try await harness.sessionRow(session).booked == 1)
        }
    }

    @Test func refusedRequestCanBeRetriedWithTheSameKey() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 2)
            #expect(try await harness.book(session: session, adults: 2, key: "first").status == 201)
            let soldOut = try await harness.book(session: session, adults: 1, key: "retry-me")
            #expect(soldOut.status == 409)
            let firstID =
                try #require(try await harness.get("/api/v1/bookings?session_id=\(session)").json["bookings"] as? [[String: Any]]).first?[
                    "id"] as? String
            #expect(try await harness.post("/api/v1/bookings/\(try #require(firstID))/cancel", nil).status == 200)
            let retried = try await harness.book(session: session, adults: 1, key: "retry-me")
            #expect(retried.status == 201, "a refused request stores nothing, so its key is free")
        }
    }

    @Test func bookingWithoutKeyIsRefused() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession()
            let response = try await harness.post(
                "/api/v1/bookings", #"{"session_id": "\#(session)", "customer_id": "c", "adult_count": 1}"#
            )
            #expect(response.status == 400)
            #expect(response.string("type")?.hasSuffix("/idempotency-key-missing") == true)
        }
    }

    @Test func anExpiredRecordFreesItsKeyForBookingsAndForCancels() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession()
            let first = try await harness.book(session: session, adults: 1, key: "old-key")
            let bookingID = try #require(first.string("id"))
            #expect(try await harness.post("/api/v1/bookings/\(bookingID)/cancel", nil, key: "old-cancel").status == 200)
            _ = try await harness.db.database.query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")

            let other = try await harness.book(session: session, adults: 3, key: "old-key")
            #expect(other.status == 201, "past the TTL the key is free: another body books, no 422")
            #expect(other.headers.first(name: "Idempotent-Replayed") == nil)
            #expect(other.string("id") != bookingID)
            let otherID = try #require(other.string("id"))
            let cancel = try await harness.post("/api/v1/bookings/\(otherID)/cancel", nil, key: "old-cancel")
            #expect(cancel.status == 200, "a cancel's expired key is claimed again, not reused")
            #expect(cancel.headers.first(name: "Idempotent-Replayed") == nil)
            #expect(try await harness.sessionRow(session).booked == 0)
        }
    }

    @Test func confirmAndCancelReplayTheirAnswerAndRefuseAnotherOperation() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession()
            let held = try await harness.book(session: session, adults: 2, holdSeconds: 300, key: "hold-1")
            let id = try #require(held.string("id"))
            let confirmed = try await harness.post("/api/v1/bookings/\(id)/confirm", nil, key: "confirm-1")
            let again = try await harness.post("/api/v1/bookings/\(id)/confirm", nil, key: "confirm-1")
            #expect(confirmed.status == 200)
            #expect(again.status == 200)
            #expect(again.body == confirmed.body)
            #expect(again.headers.first(name: "Idempotent-Replayed") == "true")
            let before = try await harness.db.contentDigest()
            let cancel = try await harness.post("/api/v1/bookings/\(id)/cancel", nil, key: "confirm-1")
            #expect(cancel.status == 422, "the key was used for another operation")
            #expect(cancel.string("type")?.hasSuffix("/idempotency-key-reused") == true)
            #expect(try await harness.db.contentDigest() == before)
        }
    }

    @Test func pruningDeletesOnlyRecordsPastTheTTL() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession()
            #expect(try await harness.book(session: session, adults: 1, key: "kept").status == 201)
            #expect(try await harness.book(session: session, adults: 1, key: "stale").status == 201)
            _ = try await harness.db.database.query(
                "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'stale'")
            try await harness.db.database.withConnection { connection in
                try await IdempotencyStore(ttlHours: 24).prune(on: connection)
            }
            let keys = try await harness.db.database.query("SELECT key FROM idempotency_keys ORDER BY key").map {
                try $0.decode(String.self)
            }
            #expect(keys == ["kept"])
        }
    }

    @Test func theFingerprintIsTheSHA256OfTheOperationAsStoredRecordsHoldIt() async throws {
        try await withBookings { harness in
            let operation = "POST reschedule 1\n{\"session_id\":\"é\"}"
            let claim = IdempotencyClaim(caller: "me", key: "k", operation: operation)
            let rows = try await harness.db.database.query("SELECT encode(sha256(convert_to(\(operation), 'UTF8')), 'hex')")
            #expect(claim.fingerprint == (try rows[0].decode(String.self)))
            #expect(claim.lockID != IdempotencyClaim(caller: "you", key: "k", operation: operation).lockID)
            #expect(
                claim.lockID == IdempotencyClaim(caller: "me", key: "k", operation: "other").lockID, "the lock is the key's, not the body's"
            )
        }
    }
}
