import Foundation
import Shared
import TestSupport
import Testing

@testable import Fanout

/// The fan-out's side of `LogEpochs`, with an asynchronous failover played on one server:
/// the events the lost primary had not replicated are deleted, and the new epoch the
/// promoted standby's writer would begin is recorded, with its first event past the gap.
@Suite(.timeLimit(.minutes(2))) struct LogEpochFanoutTests {
    @Test func streamsHandedEventsTheNewPrimaryLacksGetAResetAndLostIdsAreNeverResumedSilently() async throws {
        try await TestDatabase.with { db in
            try await db.appendEvents(5)
            _ = try await db.database.query("INSERT INTO log_epochs VALUES (1, 1, 0, 1)")
            try await withFanout(on: db) { fanout in
                let url = fanout.events(["availability"])
                let ahead = try await EventStreamClient.open(url, headers: [("Last-Event-ID", "5")])
                let behind = try await EventStreamClient.open(url, headers: [("Last-Event-ID", "3")])
                let served = try await db.appendEvents(3)  // 6, 7, 8
                #expect(await ahead.collect(3).compactMap(\.id) == ["6", "7", "8"])
                #expect(await behind.collect(5).compactMap(\.id) == ["4", "5", "6", "7", "8"])
                #expect(served == [6, 7, 8])

                // The standby had replicated up to 6; it is promoted and its writer begins epoch 2.
                let firstNew = 6 + LogEpochs.gap
                _ = try await db.database.query("DELETE FROM events WHERE id > 6")
                _ = try await db.database.query("INSERT INTO log_epochs VALUES (2, 2, 6, \(firstNew))")
                _ = try await db.database.query(
                    """
                    INSERT INTO events (id, topics, type, payload)
                    VALUES (\(firstNew), '{availability}', 'availability.updated', '{"n": "new history"}')
                    """)
                _ = try await db.database.query("NOTIFY vacancy_events")

                for stream in [ahead, behind] {
                    let reset = try #require(await stream.next(within: 5))
                    #expect(reset.event == "reset")
                    #expect(reset.id == "6", "the reset names where the new history starts")
                    #expect(reset.data.contains("history_changed") && reset.data.contains(#""last_event_id":6"#))
                    #expect(await stream.next(within: 3) == nil, "the stream ends after its reset")
                    #expect(stream.hasEnded)
                }

                // Coming back from the reset's id: exactly the new history.
                let resumed = try await EventStreamClient.open(url, headers: [("Last-Event-ID", "6")])
                let next = try #require(await resumed.next(within: 3))
                #expect(next.id == String(firstNew) && next.data.contains("new history"))
                resumed.close()

                // A lost id is never resumed as if it were the new history's.
                let lost = try await EventStreamClient.open(url, headers: [("Last-Event-ID", "8")])
                let lostReset = try #require(await lost.next(within: 3))
                #expect(lostReset.event == "reset" && lostReset.data.contains("history_changed"))
                lost.close()
                #expect(
                    try await FanoutStreamTests.metric(
                        #"vacancy_fanout_streams_ended_total{reason="history_changed"}"#, at: fanout.baseURL) == 2)
            }

            // An instance started after the failover knows the gap from the table.
            try await withFanout(on: db) { fresh in
                let lost = try await EventStreamClient.open(fresh.events(["availability"]), headers: [("Last-Event-ID", "7")])
                let reset = try #require(await lost.next(within: 3))
                #expect(reset.event == "reset" && reset.data.contains("history_changed"))
                lost.close()
                let kept = try await EventStreamClient.open(fresh.events(["availability"]), headers: [("Last-Event-ID", "5")])
                #expect(await kept.collect(2).compactMap(\.id) == ["6", String(6 + LogEpochs.gap)])
                kept.close()
            }
        }
    }

    /// A new epoch at the head (a planned switchover, or synchronous replication: nothing
    /// was lost) costs no stream anything.
    @Test func anEpochThatLostNothingResetsNobody() async throws {
        try await TestDatabase.with { db in
            try await db.appendEvents(4)
            try await withFanout(on: db) { fanout in
                let stream = try await EventStreamClient.open(fanout.events(["availability"]), headers: [("Last-Event-ID", "2")])
                #expect(await stream.collect(2).compactMap(\.id) == ["3", "4"])
                let firstNew = 4 + LogEpochs.gap
                _ = try await db.database.query("INSERT INTO log_epochs VALUES (1, 2, 4, \(firstNew))")
                _ = try await db.database.query(
                    """
                    INSERT INTO events (id, topics, type, payload)
                    VALUES (\(firstNew), '{availability}', 'availability.updated', '{}')
                    """)
                _ = try await db.database.query("NOTIFY vacancy_events")
                let next = try #require(await stream.next(within: 5))
                #expect(next.event == "availability.updated" && next.id == String(firstNew))
                stream.close()
            }
        }
    }
}
