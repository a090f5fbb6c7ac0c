import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Shared
import TestSupport

/// Watches the calculator drain a backlog of changes: progress every second, then the
/// drain rate measured by the database's own clock. The span runs from the first batch's
/// events to the last batch's, so it covers every batch but the first: the rate counts the
/// changes and events of those batches only.
struct DrainWatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain", abstract: "Time the calculator draining the backlog in `changes` (seed it first).")

    @Option(help: "PostgreSQL URL of the Vacancy database.") var databaseURL = "postgres://postgres@127.0.0.1:54359/vacancy"
    @Option(help: "Give up after this many seconds.") var timeout = 300
    @Option(help: "The calculator's batch size (VACANCY_DRAIN_BATCH).") var batch = 1000
    @Option(help: "Write the summary as JSON to this file.") var json: String?

    func run() async throws {
        let url = try DatabaseURL(parsing: databaseURL)
        let result = try await url.withConnection(logger: Logger(label: "bench")) { connection in
            let backlog = try await connection.scalar("SELECT count(*)::bigint FROM changes")
            let eventsBefore = try await connection.scalar("SELECT coalesce(max(id), 0)::bigint FROM events")
            print("vacancy-bench: drain: \(backlog) changes waiting")
            let deadline = ContinuousClock.now + .seconds(timeout)
            var remaining = backlog
            while remaining > 0 {
                guard ContinuousClock.now < deadline else { throw ValidationError("the backlog was not drained within \(timeout) s") }
                try await Task.sleep(for: .seconds(1))
                remaining = try await connection.scalar("SELECT count(*)::bigint FROM changes")
                print("vacancy-bench: drain: \(backlog - remaining)/\(backlog) changes drained")
            }
            let rows = try await connection.query(
                """
                WITH appended AS (SELECT id, created_at, xmin::text::bigint AS batch FROM events WHERE id > \(eventsBefore)),
                first AS (SELECT batch FROM appended ORDER BY id LIMIT 1)
                SELECT count(*)::bigint,
                       (count(*) FILTER (WHERE batch = (SELECT batch FROM first)))::bigint,
                       extract(epoch FROM max(created_at) - min(created_at))::float8
                FROM appended
                """,
                logger: Logger(label: "bench")
            ).collect()
            let (events, firstBatchEvents, span) = try rows[0].decode((Int, Int, Double).self)
            let seconds = max(span, 0.001)
            let measuredChanges = max(0, backlog - batch)
            return DrainResult(
                changes: backlog, events: events, seconds: seconds,
                changesPerSecond: Double(measuredChanges) / seconds, eventsPerSecond: Double(events - firstBatchEvents) / seconds
            )
        }
        print(
            String(
                format: "vacancy-bench: drain: %d changes → %d events in %.2f s: %.0f changes/s, %.0f events/s",
                result.changes, result.events, result.seconds, result.changesPerSecond, result.eventsPerSecond))
        if let json { try writeJSON(result, to: json) }
    }
}

struct DrainResult: Codable {
    var changes: Int
    var events: Int
    var seconds: Double
    var changesPerSecond: Double
    var eventsPerSecond: Double
}

/// Commit-to-event latency of bookings already made: from each booking's commit to the
/// commit of its `booking.updated` event, both read from PostgreSQL's commit timestamps
/// (`track_commit_timestamp = on`), so no client clock or network is in the figure.
struct EventLatency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event-latency", abstract: "Booking commit → event commit latency, from commit timestamps.")

    @Option(help: "PostgreSQL URL of the Vacancy database.") var databaseURL = "postgres://postgres@127.0.0.1:54359/vacancy"
    @Option(help: "Leave out bookings from the first seconds (warm-up).") var skipSeconds = 3
    @Option(help: "A label for the summary line.") var label = "event-latency"
    @Option(help: "Write the summary as JSON to this file.") var json: String?

    func run() async throws {
        let url = try DatabaseURL(parsing: databaseURL)
        let recorder = LatencyRecorder()
        let missing = try await url.withConnection(logger: Logger(label: "bench")) { connection in
            let rows = try await connection.query(
                """
                WITH measured AS (
                    SELECT b.id, pg_xact_commit_timestamp(b.xmin) AS committed FROM bookings b
                    WHERE b.created_at >= (SELECT min(created_at) FROM bookings) + make_interval(secs => \(skipSeconds)::int)
                )
                SELECT (extract(epoch FROM pg_xact_commit_timestamp(e.xmin) - m.committed) * 1000000)::bigint
                FROM measured m LEFT JOIN events e
                  ON e.type = 'booking.updated' AND (e.payload->'booking'->>'id')::uuid = m.id
                """,
                logger: Logger(label: "bench")
            )
            var missing = 0
            for try await micros in rows.decode(Int64?.self) {
                guard let micros else {
                    missing += 1
                    continue
                }
                recorder.record(microseconds: UInt64(max(0, micros)), outcome: "event")
            }
            return missing
        }
        let summary = recorder.summary()
        guard missing == 0 else { throw ValidationError("\(missing) bookings have no booking.updated event") }
        print(
            String(
                format: "vacancy-bench: %@: %d bookings, commit → event p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.1f ms",
                label, Int(summary.count), summary.p50Milliseconds, summary.p99Milliseconds, summary.p999Milliseconds,
                summary.maxMilliseconds)
        )
        if let json { try writeJSON(summary, to: json) }
    }
}

func writeJSON(_ value: some Encodable, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(value).write(to: URL(fileURLWithPath: path))
}
