import PostgresNIO
import Shared
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
