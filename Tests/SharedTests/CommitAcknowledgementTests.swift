import Logging
import PostgresNIO
import Shared
import TestSupport
import Testing

/// A statement outside `BEGIN … COMMIT` commits at the Sync after its CommandComplete, and
/// PostgresNIO hands over its rows at CommandComplete: what is answered from those rows alone
/// may never have committed. A deferred constraint makes that commit fail every time.
@Suite(.timeLimit(.minutes(1))) struct CommitAcknowledgementTests {
    /// A table whose duplicate is found only when the transaction commits.
    private func deferredUniqueTable(_ db: TestDatabase) async throws {
        _ = try await db.database.query("CREATE TABLE seats (n int, CONSTRAINT one_each UNIQUE (n) DEFERRABLE INITIALLY DEFERRED)")
        _ = try await db.database.query("INSERT INTO seats VALUES (1)")
    }

    @Test func rowsArriveBeforeTheCommitAndAwaitCommitReportsItsFailure() async throws {
        try await TestDatabase.with(migrate: false) { db in
            try await deferredUniqueTable(db)
            let connection = try await db.url.connect(logger: TestEnvironment.logger)
            // Unwatched, so the rows are seen as PostgresNIO hands them over (a watched statement may
            // instead fail as the connection closes right after them, which is as safe).
            let rows = try await connection.query("INSERT INTO seats VALUES (1) RETURNING n", logger: TestEnvironment.logger).collect()
            #expect(rows.count == 1, "the row came back although its transaction cannot commit")
            // Watched, as every pooled connection is (`Database.withConnection`): a statement on a
            // connection that closes fails rather than waits.
            let watch = ConnectionWatch(connection)
            await #expect(throws: (any Error).self, "the failed commit surfaces before anything is answered") {
                try await watch.run { try await connection.awaitCommit(logger: TestEnvironment.logger) }
            }
            try? await connection.close()
            #expect(try await db.scalar("SELECT count(*)::int FROM seats") == 1, "the duplicate never committed")
        }
    }

    @Test func writeThrowsWhenTheCommitFailsAndReturnsRowsWhenItHolds() async throws {
        try await TestDatabase.with(migrate: false) { db in
            try await deferredUniqueTable(db)
            let database = db.database
            await #expect(throws: (any Error).self) { try await database.write("INSERT INTO seats VALUES (1) RETURNING n") }
            let rows = try await database.write("INSERT INTO seats VALUES (2) RETURNING n")
            #expect(try rows.map { try $0.decode(Int.self) } == [2])
            #expect(try await db.scalar("SELECT count(*)::int FROM seats") == 2, "only the second insert committed")
        }
    }
}
