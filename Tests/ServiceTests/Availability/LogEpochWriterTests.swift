import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Availability

/// The writer's side of `LogEpochs`: one epoch per WAL timeline, and ids past a gap when
/// the timeline changes (a promoted standby), so no id the old primary served is reused.
@Suite(.timeLimit(.minutes(2))) struct LogEpochWriterTests {
    @Test func theWriterBeginsAnEpochPerTimelineAndSkipsIdsWhenTheTimelineChanges() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db) { _ in
                    let session = try await bookings.createSession(daysAhead: 3)
                    try await expectEventually(within: 5) { try await db.changesDrained() }
                    let first = try await db.database.query("SELECT epoch, timeline, previous_last_id, first_id FROM log_epochs")
                    try #require(first.count == 1)
                    let (epoch, timeline, previous, firstID) = try first[0].decode((Int, Int, Int64, Int64).self)
                    #expect(epoch == 1 && previous == 0 && firstID == 1, "the first epoch starts the log with no gap")
                    let walTimeline = try await db.scalar(
                        "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
                    #expect(timeline == walTimeline)
                    let head = try await db.database.query("SELECT max(id) FROM events")[0].decode(Int64.self)

                    // As if the server had been promoted onto a timeline the log has not seen.
                    _ = try await db.database.query("UPDATE log_epochs SET timeline = timeline + 100")
                    #expect(try await bookings.book(session: session, adults: 1).status == 201)
                    try await expectEventually(within: 5) { try await db.changesDrained() }
                    let secondRows = try await db.database.query("SELECT previous_last_id, first_id FROM log_epochs WHERE epoch = 2")
                    let second = try #require(secondRows.first, "a second epoch began").decode((Int64, Int64).self)
                    #expect(second.0 == head && second.1 == head + LogEpochs.gap)
                    let ids = try await db.database.query("SELECT id FROM events WHERE id > \(head) ORDER BY id")
                        .map { try $0.decode(Int64.self) }
                    #expect(ids.first == head + LogEpochs.gap, "the new epoch's first event is past the gap")
                    #expect(ids == Array((head + LogEpochs.gap)...(head + LogEpochs.gap + Int64(ids.count) - 1)), "gap-free after it")
                    #expect(try await db.scalar("SELECT count(*)::int FROM log_epochs") == 2, "one epoch per timeline, not per batch")
                }
            }
        }
    }
}
