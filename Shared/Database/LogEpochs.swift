import Logging
import PostgresNIO

/// The event log's epochs. Event ids are gap-free within an epoch; a new one begins when
/// the event writer finds itself on a new WAL timeline (the standby it runs on was
/// promoted). With asynchronous replication the new primary may lack the last events the
/// old one served, so the new epoch's ids start `gap` past the new primary's head: an id a
/// subscriber holds from the lost history lies in that gap, is never written again, and
/// its owner gets a `reset` instead of different events under the same ids.
public enum LogEpochs {
    /// Ids skipped at the start of every epoch after the first (far more events than a
    /// standby can lag behind).
    public static let gap: Int64 = 1_000_000_000

    /// One epoch: its ids start at `firstID`, and the primary's log ended at `previousLastID` when it began.
    public struct Epoch: Sendable, Equatable {
        public let epoch: Int
        public let timeline: Int
        public let previousLastID: Int64
        public let firstID: Int64

        public init(epoch: Int, timeline: Int, previousLastID: Int64, firstID: Int64) {
            self.epoch = epoch
            self.timeline = timeline
            self.previousLastID = previousLastID
            self.firstID = firstID
        }

        /// The ids no event of this history has: after the previous epoch's end, before this one's start.
        public var skipped: ClosedRange<Int64>? {
            firstID > previousLastID + 1 ? (previousLastID + 1)...(firstID - 1) : nil
        }
    }

    /// The id after which the writer appends: the log's newest id, or just before the
    /// current epoch's first id when nothing has been written in it yet. For SQL.
    public static let headSQL =
        "GREATEST((SELECT coalesce(max(id), 0) FROM events), (SELECT coalesce(max(first_id), 1) - 1 FROM log_epochs))::bigint"

    /// Begins a new epoch if the server's current WAL timeline is not the newest epoch's
    /// (or there is none yet); returns it when it did. Run by the writer before it appends,
    /// on the connection that appends.
    public static func beginIfNewTimeline(on connection: PostgresConnection, logger: Logger) async throws -> Epoch? {
        let rows = try await connection.query(
            """
            WITH now_on AS (SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline),
                 last AS (SELECT epoch, timeline FROM log_epochs ORDER BY epoch DESC LIMIT 1),
                 head AS (SELECT coalesce(max(id), 0)::bigint AS id FROM events)
            INSERT INTO log_epochs (epoch, timeline, previous_last_id, first_id)
            SELECT coalesce(last.epoch, 0) + 1, now_on.timeline, head.id,
                   head.id + CASE WHEN last.epoch IS NULL THEN 1 ELSE \(gap) END
            FROM now_on CROSS JOIN head LEFT JOIN last ON true
            WHERE last.epoch IS NULL OR last.timeline <> now_on.timeline
            RETURNING epoch, timeline, previous_last_id, first_id
            """,
            logger: logger
        ).collect()
        return try rows.first.map(epoch(from:))
    }

    /// The epochs after `after`, oldest first.
    public static func read(after: Int, on connection: PostgresConnection, logger: Logger) async throws -> [Epoch] {
        try await connection.query(
            "SELECT epoch, timeline, previous_last_id, first_id FROM log_epochs WHERE epoch > \(after) ORDER BY epoch",
            logger: logger
        ).collect().map(epoch(from:))
    }

    private static func epoch(from row: PostgresRow) throws -> Epoch {
        let (epoch, timeline, previous, first) = try row.decode((Int, Int, Int64, Int64).self)
        return Epoch(epoch: epoch, timeline: timeline, previousLastID: previous, firstID: first)
    }
}
