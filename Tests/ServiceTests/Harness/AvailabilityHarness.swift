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
    clock: ClockTick? = nil,
    positionInterval: Duration? = nil,
    _ body: @Sendable (_ baseURL: String) async throws -> T
) async throws -> T {
    var configuration = try AvailabilityConfiguration(
        common: CommonConfiguration(serviceName: "availability", database: DatabaseConfiguration(url: db.url, maximumConnections: 4)))
    configuration.pollInterval = pollInterval
    if let clock { configuration.clock = clock }
    if let positionInterval { configuration.positionInterval = positionInterval }
    let ready = configuration
    return try await withRunningApp(
        { onRunning in
            AvailabilityApp.make(configuration: ready, logger: TestEnvironment.logger, listen: listen, onServerRunning: onRunning)
        }, body)
}

extension TestDatabase {
    /// Whether every change has been turned into events.
    func changesDrained() async throws -> Bool {
        try await scalar("SELECT count(*)::int FROM changes") == 0
    }
}
