import Foundation
import Shared
import TestSupport
import Testing

@testable import Bookings

@Suite(.timeLimit(.minutes(2))) struct DatabaseOutageTests {
    @Test func serviceAnswers503WhileDatabaseIsDownAndRecoversWithoutRestart() async throws {
        // Below the ephemeral range, so no test's client socket can hold it while the server restarts.
        let cluster = try await PrivateCluster.start(port: .bookingsOutage, durable: true)
        try await withCleanup({ try await Self.outage(cluster) }, cleanup: { await cluster.destroy() })
    }

    static func outage(_ cluster: PrivateCluster) async throws {
        try await TestDatabase.withExisting(url: cluster.url) { db in
            try await withBookingsService(on: db, acquireTimeout: .seconds(1)) { harness in
                let session = try await harness.createSession()
                #expect(try await harness.book(session: session, adults: 1).status == 201)

                try await cluster.stop()
                let down = try await harness.book(session: session, adults: 1)
                #expect(down.status == 503)
                #expect(down.contentType == "application/problem+json")
                #expect(down.headers.first(name: "Retry-After") != nil)
                #expect(try await TestHTTP.send(.GET, harness.baseURL + "/readyz").status == 503)
                #expect(try await TestHTTP.send(.GET, harness.baseURL + "/healthz").status == 200, "alive, just not ready")

                try await cluster.start()
                let back = ContinuousClock.now
                try await Self.expectServingAgain(harness, session: session, within: .seconds(2), since: back)
                #expect(try await Self.row(harness, session).booked == 2)

                // A crash (kill -9, crash recovery at the next start) the same way.
                try await cluster.kill()
                #expect(try await harness.book(session: session, adults: 1).status == 503)
                try await cluster.start()
                try await Self.expectServingAgain(harness, session: session, within: .seconds(2), since: .now)
                #expect(try await Self.row(harness, session).booked == 3)
            }
        }
    }

    /// The session's row, read by the test's own pool, which may not have seen the server come
    /// back yet (it tells "unavailable" until its next look): asked again for up to 5 s.
    static func row(_ harness: BookingsHarness, _ session: String) async throws -> (capacity: Int, booked: Int, held: Int) {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            do {
                return try await harness.sessionRow(session)
            } catch is DatabaseUnavailable where ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Books every 50 ms until one succeeds; every answer before it is a 503 with Retry-After.
    static func expectServingAgain(
        _ harness: BookingsHarness, session: String, within limit: Duration, since back: ContinuousClock.Instant
    ) async throws {
        while true {
            let attempt = try await harness.book(session: session, adults: 1)
            if attempt.status == 201 { break }
            #expect(attempt.status == 503, "while reconnecting the answer is 503, never 500: \(attempt.text)")
            #expect(attempt.headers.first(name: "Retry-After") != nil)
            guard ContinuousClock.now - back < limit + .seconds(3) else {
                Issue.record("not serving again \(ContinuousClock.now - back) after PostgreSQL came back")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let took = ContinuousClock.now - back
        #expect(took < limit, "serving again \(took) after PostgreSQL came back")
    }

    /// A primary and its synchronous standby in `VACANCY_DATABASE_URL`: kill -9 the primary,
    /// and until the standby is promoted no host takes writes (503 with Retry-After, at once);
    /// once it is, bookings go to it within 5 s, and every acknowledged booking is there.
    @Test func bookingsFollowThePromotedStandbyAndLoseNothingAcknowledged() async throws {
        let primary = try await PrivateCluster.start(port: .failoverPrimary, durable: true)
        var standbyCluster: PrivateCluster?
        try await withCleanup(
            {
                let standby = try await PrivateCluster.startStandby(of: primary, port: .failoverStandby, synchronous: true)
                standbyCluster = standby
                let url = try DatabaseURL(
                    parsing:
                        "postgres://postgres@127.0.0.1:\(primary.port),127.0.0.1:\(standby.port)/vacancy?target_session_attrs=read-write")
                try await TestDatabase.withExisting(url: url) { db in
                    try await withBookingsService(on: db, acquireTimeout: .seconds(1)) { harness in
                        try await expectEventually(within: 3) { await harness.databaseEndpoint()?.port == primary.port }
                        let session = try await harness.createSession(capacity: 100)
                        var acknowledged = 0
                        for _ in 0..<20 where try await harness.book(session: session, adults: 1).status == 201 { acknowledged += 1 }
                        #expect(acknowledged == 20)

                        try await primary.kill()
                        // The standby answers, but only reads: no host takes writes.
                        try await expectEventually(within: 3) { try await harness.book(session: session, adults: 1).status == 503 }
                        let started = ContinuousClock.now
                        let refused = try await harness.book(session: session, adults: 1)
                        #expect(refused.status == 503 && refused.headers.first(name: "Retry-After") != nil)
                        #expect(refused.contentType == "application/problem+json")
                        #expect(ContinuousClock.now - started < .milliseconds(500), "refused at once, not after a wait")

                        try await standby.promote()
                        try await Self.expectServingAgain(harness, session: session, within: .seconds(5), since: .now)
                        #expect(await harness.databaseEndpoint()?.port == standby.port)
                        // The test's own pool finds the new primary on its own schedule: read through
                        // it once it does (a read before that fails with "no writable host").
                        let expected = acknowledged + 1
                        await expectEventually(within: 5, "nothing acknowledged was lost") {
                            (try? await harness.sessionRow(session).booked) == expected
                        }
                        #expect(try await harness.sessionRow(session).booked == expected, "nothing acknowledged was lost")
                    }
                }
            },
            cleanup: {
                await primary.destroy()
                await standbyCluster?.destroy()
            })
    }
}
