import Foundation
import TestSupport
import Testing

@testable import Bookings

@Suite(.timeLimit(.minutes(2))) struct DatabaseOutageTests {
    @Test func serviceAnswers503WhileDatabaseIsDownAndRecoversWithoutRestart() async throws {
        // Below the ephemeral range, so no test's client socket can hold it while the server restarts.
        let cluster = try await PrivateCluster.start(port: 18_291)
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
                var recovered: TestResponse?
                for _ in 0..<60 {
                    let attempt = try await harness.book(session: session, adults: 1)
                    if attempt.status == 201 {
                        recovered = attempt
                        break
                    }
                    #expect(attempt.status == 503, "while reconnecting the answer is 503, never 500: \(attempt.text)")
                    try await Task.sleep(for: .milliseconds(500))
                }
                #expect(recovered != nil, "bookings succeed again once PostgreSQL is back")
                #expect(try await harness.sessionRow(session).booked == 2)
            }
        }
    }
}
