import Foundation
import PostgresNIO
import Shared
import TestSupport

@testable import Availability

/// Runs an availability calculator against `db` for the length of `body`.
func withCalculator<T: Sendable>(
    on db: TestDatabase,
    pollInterval: Duration = .seconds(1),
    listen: Bool = true,
    clock: ClockTick = ClockTick(interval: .seconds(5), retentionHours: 24, keepAtLeast: 10_000),
    _ body: @Sendable (_ baseURL: String) async throws -> T
) async throws -> T {
    let configuration = AvailabilityConfiguration(
        common: CommonConfiguration(serviceName: "availability", database: DatabaseConfiguration(url: db.url, maximumConnections: 4)),
        pollInterval: pollInterval,
        clock: clock
    )
    return try await withRunningApp(
        { onRunning in
            AvailabilityApp.make(configuration: configuration, logger: TestEnvironment.logger, listen: listen, onServerRunning: onRunning)
        }, body)
}

extension TestDatabase {
    /// Whether every change has been turned into events.
    func changesDrained() async throws -> Bool {
        try await scalar("SELECT count(*)::int FROM changes") == 0
    }
}
