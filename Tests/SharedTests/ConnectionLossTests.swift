import Logging
import PostgresNIO
import TestSupport
import Testing

@testable import Shared

/// A connection that closes under running work must fail that work, never leave it waiting:
/// the cause of the test run that stalled in CI (a pool shut down under a transaction).
@Suite(.timeLimit(.minutes(1))) struct ConnectionLossTests {
    @Test func aStatementOnAClosedConnectionFailsInsteadOfWaitingForever() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let connection = try await db.url.connect(logger: TestEnvironment.logger)
            let watch = ConnectionWatch(connection)
            try await connection.close()
            // Written to a closed connection, this statement would never be answered.
            let attempt = Task {
                try await watch.run { try await connection.query("SELECT 1", logger: TestEnvironment.logger).collect().count }
            }
            await #expect(throws: DatabaseUnavailable.self) { try await attempt.value(within: .seconds(5)) }
            #expect(watch.isClosed)
        }
    }

    @Test func workUnderWayFailsWhenTheServerCutsTheConnection() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let connection = try await db.url.connect(logger: TestEnvironment.logger)
            let watch = ConnectionWatch(connection)
            let pid = try await connection.query("SELECT pg_backend_pid()", logger: TestEnvironment.logger).collect()[0].decode(Int32.self)
            let work = Task {
                try await watch.run {
                    // Stands for work that would outlive its connection: it waits far longer than the test.
                    _ = try await connection.query("SELECT 1", logger: TestEnvironment.logger).collect()
                    try await Task.sleep(for: .seconds(600))
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await db.scalar("SELECT count(pg_terminate_backend(\(pid)))::int") == 1)
            await #expect(throws: DatabaseUnavailable.self) { try await work.value(within: .seconds(10)) }
            await #expect(throws: DatabaseUnavailable.self, "a closed connection's watch runs nothing more") { try await watch.run { 42 } }
        }
    }

    @Test func cancellingThePoolLetsATransactionUnderWayFinish() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let database = Database(configuration: .init(url: db.url, maximumConnections: 2), logger: TestEnvironment.logger)
            let pool = Task { try await database.run() }
            _ = try await database.query("CREATE TABLE marks (n int)")
            let transaction = Task {
                try await database.transaction { connection in
                    try await connection.query("INSERT INTO marks VALUES (1)", logger: TestEnvironment.logger)
                    try await connection.query("SELECT pg_sleep(0.5)", logger: TestEnvironment.logger)
                    try await connection.query("INSERT INTO marks VALUES (2)", logger: TestEnvironment.logger)
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            pool.cancel()
            try await transaction.value(within: .seconds(10))
            try await pool.value(within: .seconds(10))
            #expect(try await db.scalar("SELECT count(*)::int FROM marks") == 2, "both statements committed before the pool closed")
        }
    }

    /// Whether a host takes writes is asked on a fresh connection, which can already be closed
    /// when it is handed over (PostgresNIO's connect, cancelled as it completes, closes the
    /// connection it still returns). Asked unguarded, that question is never answered: the
    /// cause of the test runs that hung when a `Database` was cancelled in the middle of a look.
    @Test(arguments: [DatabaseURL.TargetSessionAttributes.readWrite, .primary])
    func theHostCheckOnAClosedConnectionFailsInsteadOfWaitingForever(wanted: DatabaseURL.TargetSessionAttributes) async throws {
        try await TestDatabase.with(migrate: false) { db in
            var url = db.url
            url.targetSessionAttributes = wanted
            let connection = try await url.connect(logger: TestEnvironment.logger)
            try await connection.close()
            let check = Task { try await url.refusal(of: connection, logger: TestEnvironment.logger) }
            await #expect(throws: DatabaseUnavailable.self) { _ = try await check.value(within: .seconds(5)) }
        }
    }

    /// The same race, end to end: looks for the writable host and connections, cancelled at
    /// every point of their work, each end promptly.
    @Test func aLookCancelledAtAnyMomentEndsPromptly() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let url = db.url
            for round in 0..<1000 {
                let look = Task { () async throws in
                    if round.isMultiple(of: 2) {
                        _ = await url.findSuitableHost(logger: TestEnvironment.logger)
                    } else {
                        try? await url.withConnection(logger: TestEnvironment.logger) { _ in }
                    }
                }
                try await Task.sleep(for: .microseconds(Int.random(in: 0...6_000)))
                look.cancel()
                try await look.value(within: .seconds(5))
            }
        }
    }
}
