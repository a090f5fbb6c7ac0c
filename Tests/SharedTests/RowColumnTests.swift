import PostgresNIO
import Shared
import TestSupport
import Testing

/// Rows are read by column name; a name the statement did not select is an error, not a crash.
@Suite struct RowColumnTests {
    @Test func aColumnIsReadByNameAndAMissingOneThrows() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let rows = try await db.database.query("SELECT 7 AS seven, 'x' AS letter")
            let row = try #require(rows.first).makeRandomAccess()
            #expect(try row.column("seven").decode(Int.self) == 7)
            #expect(try row.column("letter").decode(String.self) == "x")
            #expect(throws: MissingColumn.self) { try row.column("eight") }
        }
    }
}
