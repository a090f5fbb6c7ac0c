import Foundation
import Logging
import PostgresNIO
import Shared
import TestSupport

/// The stack's database as the scenarios read it, over a connection of their own.
struct StackDatabase {
    let connection: PostgresConnection
    let logger: Logger

    /// Runs `body` on a new connection to `databaseURL`, closed afterwards.
    static func with<T>(_ databaseURL: String, _ body: (StackDatabase) async throws -> T) async throws -> T {
        let logger = Logger(label: "resilience")
        return try await DatabaseURL(parsing: databaseURL).withConnection(logger: logger) { connection in
            try await body(StackDatabase(connection: connection, logger: logger))
        }
    }

    func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await connection.query(query, logger: logger).collect()
    }

    /// The first column of the first row, as an Int (`PostgresConnection.scalar`).
    func int(_ query: PostgresQuery) async throws -> Int {
        try await connection.scalar(query, logger: logger)
    }

    /// The log's newest event id (0 when empty).
    static func head(_ databaseURL: String) async throws -> Int64 {
        try await with(databaseURL) { try await $0.rows("SELECT coalesce(max(id), 0)::bigint FROM events")[0].decode(Int64.self) }
    }

    /// Ids of the events on topic `availability` after `after`, in order: what a subscriber
    /// of that topic starting there must receive.
    static func availabilityIDs(_ databaseURL: String, after: Int64) async throws -> [Int64] {
        try await with(databaseURL) { database in
            try await database.rows("SELECT id FROM events WHERE id > \(after) AND 'availability' = ANY(topics) ORDER BY id")
                .map { try $0.decode(Int64.self) }
        }
    }
}

extension StackDatabase {
    /// The events on topic `availability` after `after`: their ids in order, and each one's
    /// `payload::text` hashed as `EventWatcher` hashes the `data:` it received.
    static func availabilityLog(_ databaseURL: String, after: Int64) async throws -> AvailabilityLog {
        try await with(databaseURL) { database in
            let rows = try await database.rows(
                """
                SELECT id, payload::text, CASE WHEN type = 'availability.updated'
                    THEN (SELECT t FROM unnest(topics) AS t WHERE t LIKE 'availability.session.%' LIMIT 1) END
                FROM events WHERE id > \(after) AND 'availability' = ANY(topics) ORDER BY id
                """)
            var log = AvailabilityLog()
            for row in rows {
                let (id, payload, key) = try row.decode((Int64, String, String?).self)
                log.ids.append(id)
                log.payloads[id] = payload.hashValue
                if let key { log.sessionKeys[id] = key }
            }
            return log
        }
    }
}

/// The log's availability events after a point: ids in order, each one's payload (hashed)
/// and, for an `availability.updated`, the session topic a newer one of which supersedes it
/// in a slow reader's backlog (the fan-out's conflation key).
struct AvailabilityLog {
    var ids: [Int64] = []
    var payloads: [Int64: Int] = [:]
    var sessionKeys: [Int64: String] = [:]
}

/// Waits for `condition` (polled as the tests poll); throws, naming `what`, once `limit` passes.
func waitUntil(within limit: Duration, _ what: String, _ condition: () async -> Bool) async throws {
    let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
    guard await eventually(within: seconds, condition) else { throw ResilienceFailure("not within \(limit): \(what)") }
    try Task.checkCancellation()
}
