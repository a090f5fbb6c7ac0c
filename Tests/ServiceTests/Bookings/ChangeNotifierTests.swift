import Foundation
import Logging
import PostgresNIO
import TestSupport
import Testing

@testable import Bookings

/// Committed changes wake the calculator with `NOTIFY vacancy_changes`, folded together
/// under load, and never from inside the booking transaction.
@Suite(.timeLimit(.minutes(2))) struct ChangeNotifierTests {
    /// Listens on `vacancy_changes` while `body` runs; returns how many wake-ups arrived.
    func countingNotifications(on db: TestDatabase, _ body: @Sendable () async throws -> Void) async throws -> Int {
        let url = db.url
        let connection = try await PostgresConnection.connect(
            configuration: .init(
                host: url.host, port: url.port, username: url.username, password: url.password, database: url.database, tls: .disable),
            id: 99, logger: TestEnvironment.logger
        )
        defer { Task { try? await connection.close() } }
        return try await connection.listen(on: "vacancy_changes") { notifications in
            try await withThrowingTaskGroup(of: Int.self) { group in
                group.addTask {
                    var count = 0
                    for try await _ in notifications { count += 1 }
                    return count
                }
                try await body()
                // Give the last wake-up time to arrive, then stop listening.
                try await Task.sleep(for: .milliseconds(500))
                group.cancelAll()
                return try await group.next() ?? 0
            }
        }
    }

    @Test func concurrentBookingsShareFewerWakeUps() async throws {
        try await withBookings { harness in
            let session = try await harness.createSession(capacity: 500)
            let wakeUps = try await countingNotifications(on: harness.db) {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for index in 0..<150 {
                        group.addTask { try await harness.book(session: session, adults: 1, customer: "n\(index)").status }
                    }
                    for try await status in group { #expect(status == 201) }
                }
            }
            #expect(wakeUps >= 1, "the calculator is woken after the bookings commit")
            #expect(wakeUps < 150, "wake-ups are coalesced: \(wakeUps) for 150 bookings")
        }
    }

    @Test func noWakeUpsWhenNotifyIsOff() async throws {
        try await withBookings(notifyChanges: false) { harness in
            let session = try await harness.createSession(capacity: 10)
            let wakeUps = try await countingNotifications(on: harness.db) {
                let status = try await harness.book(session: session, adults: 1).status
                #expect(status == 201)
            }
            #expect(wakeUps == 0)
            #expect(
                try await harness.db.scalar("SELECT count(*)::int FROM changes WHERE kind = 'booking.created'") == 1,
                "the change is still recorded for the poll")
        }
    }
}
