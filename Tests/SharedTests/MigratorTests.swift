import PostgresNIO
import ServiceLifecycle
import Shared
import Synchronization
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(2))) struct MigratorTests {
    @Test func servicesStartingTogetherApplyEachMigrationOnce() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 {
                    group.addTask { try await Migrator(database: db.database, logger: TestEnvironment.logger).migrate() }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(
                applied.flatMap { $0 }.sorted() == Migrations.all.map(\.version).sorted(), "each version applied by exactly one starter")
            #expect(try await db.scalar("SELECT count(*)::int FROM schema_migrations") == Migrations.all.count)
            let again = try await Migrator(database: db.database, logger: TestEnvironment.logger).migrate()
            #expect(again.isEmpty)
        }
    }

    @Test func databaseRefusesOverbookingEvenWithoutTheService() async throws {
        try await TestDatabase.with { db in
            _ = try await db.database.query(
                """
                INSERT INTO sessions (id, course_type, location, starts_at, ends_at, capacity)
                VALUES (gen_random_uuid(), 'CPR', 'A', now() + interval '1 day', now() + interval '1 day 2 hours', 2)
                """
            )
            await #expect(throws: PSQLError.self) {
                _ = try await db.database.query("UPDATE sessions SET booked = 3")
            }
            #expect(try await db.scalar("SELECT booked FROM sessions") == 0)
        }
    }
}

/// A service's own parts start once its schema is migrated, never before.
@Suite struct StartGateTests {
    /// What the part saw when it started: the migrations recorded by then.
    final class Probe: Service, Sendable {
        let database: Database
        let seen = Mutex<Int?>(nil)
        init(database: Database) { self.database = database }

        func run() async throws {
            let table = try await database.query("SELECT to_regclass('schema_migrations') IS NOT NULL").first?.decode(Bool.self) == true
            var applied = 0
            if table { applied = try await database.query("SELECT count(*)::int FROM schema_migrations").first?.decode(Int.self) ?? 0 }
            let count = applied
            seen.withLock { $0 = count }
            try? await gracefulShutdown()
        }
    }

    @Test func aServicesPartsStartAfterItsMigrations() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let host = ServiceHost(
                configuration: CommonConfiguration(
                    serviceName: "probe", database: DatabaseConfiguration(url: db.url, maximumConnections: 2)),
                logger: TestEnvironment.logger)
            let probe = Probe(database: host.database)
            try await withRunningApp({ onRunning in
                host.makeApplication(router: host.makeRouter(), services: [probe], onServerRunning: onRunning)
            }) { _ in
                let started = await eventually(within: 10) { probe.seen.withLock { $0 } != nil }
                #expect(started, "the part ran")
            }
            #expect(probe.seen.withLock { $0 } == Migrations.all.count, "the part started with every migration applied")
        }
    }

    @Test func theGateLetsWaitersThroughWhenItOpensAndAtOnceAfterwards() async {
        let gate = StartGate()
        let waiter = Task {
            await gate.wait()
            return gate.isOpen
        }
        try? await Task.sleep(for: .milliseconds(50))
        #expect(!gate.isOpen)
        gate.open()
        #expect(await waiter.value)
        await gate.wait()
        let cancelled = StartGate()
        let leaving = Task {
            await cancelled.wait()
            return cancelled.isOpen
        }
        leaving.cancel()
        #expect(await leaving.value == false, "a cancelled wait returns, the gate still shut")
    }
}
