import Logging
import PostgresNIO
import Shared

/// What time alone changes, run by the leader every few seconds: sessions that have
/// started are queued as changes (the drain then publishes them `closed`), so are sessions
/// that have come within the high-demand window while already that full (the drain sends
/// their alert), and events past retention are pruned a batch at a time, always keeping
/// the newest ones.
struct ClockTick: Sendable {
    var interval: Duration
    var retentionHours: Int
    var keepAtLeast: Int
    var rules = SeatRules()
    var pruneBatch: Int = 1000

    func tick(on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            INSERT INTO changes (session_id, kind)
            SELECT s.id, \(ChangeKind.sessionStarted.rawValue) FROM sessions s
            JOIN availability_levels l ON l.session_id = s.id
            WHERE l.level <> 'closed' AND s.starts_at <= now()
              AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.session_id = s.id AND c.kind = \(ChangeKind.sessionStarted.rawValue))
            """,
            logger: .vacancyQuiet
        )
        try await connection.query(
            """
            INSERT INTO changes (session_id, kind)
            SELECT s.id, \(ChangeKind.sessionHighDemand.rawValue) FROM sessions s
            JOIN availability_levels l ON l.session_id = s.id
            WHERE NOT l.high_demand_alerted AND \(unescaped: rules.isHighDemand(of: "s"))
              AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.session_id = s.id AND c.kind = \(ChangeKind.sessionHighDemand.rawValue))
            """,
            logger: .vacancyQuiet
        )
        try await connection.query(
            """
            DELETE FROM events WHERE id IN (
                SELECT id FROM events
                WHERE created_at < now() - make_interval(hours => \(retentionHours)::int)
                  AND id <= (SELECT id FROM events ORDER BY id DESC OFFSET \(keepAtLeast) LIMIT 1)
                ORDER BY id LIMIT \(pruneBatch)
            )
            """,
            logger: .vacancyQuiet
        )
    }
}
