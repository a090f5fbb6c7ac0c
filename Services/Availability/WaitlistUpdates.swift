import Foundation
import PostgresNIO
import Shared

/// The `waitlist.updated` events on each entry's `user.{customer_id}` topic: every status
/// change, in commit order, in the batch that drains it (each is a change row consumed
/// once, so none is told twice or left out); and the positions that moved, in passes the
/// `PositionSchedule` times, each telling only positions that differ from the last told.
enum WaitlistUpdates {
    typealias Change = (session: UUID, entry: UUID, kind: ChangeKind)
    /// Entries told a position, and the position, to record with the events (`waitlist_positions`).
    typealias Told = (entries: [UUID], positions: [Int])

    /// Adds one event per status change to `events`.
    static func statusChanges(_ changes: [Change], into events: inout EventBatch, on connection: PostgresConnection) async throws -> Told {
        guard !changes.isEmpty else { return ([], []) }
        let rows = try await connection.query(
            "\(unescaped: WaitlistEntry.select) WHERE w.id = ANY(\(Array(Set(changes.map(\.entry)))))", logger: .vacancyQuiet
        ).collect()
        var entries: [UUID: WaitlistEntry] = [:]
        for row in rows {
            let entry = try WaitlistEntry(row: row)
            entries[entry.id] = entry
        }
        var told: [UUID: Int] = [:]
        for change in changes {
            guard let entry = entries[change.entry], let status = change.kind.waitlistStatus else { continue }
            // The status this change recorded; a position only while the entry still waits.
            let position = status == .waiting && entry.status == .waiting ? entry.position : nil
            if let position { told[entry.id] = position }
            try events.add(
                type: "waitlist.updated", topics: [Topic.user(entry.customerID)],
                payload: WaitlistUpdate(entry: entry, status: status, position: position))
        }
        return (Array(told.keys), Array(told.values))
    }

    /// One statement of `passes`: adds an event for each waiting entry past where its pass
    /// has told up to whose position differs from the one it was last told, front of each line
    /// first, at most `limit`. Returns what it told, and for each pass the line it reached,
    /// or nil when it reached the end.
    static func movedPositions(
        _ passes: [PositionSchedule.Pass], limit: Int, into events: inout EventBatch, on connection: PostgresConnection
    )
        async throws -> (told: Told, reached: [UUID: Int64?])
    {
        guard !passes.isEmpty else { return (([], []), [:]) }
        let sessions = passes.map(\.session)
        let rows = try await connection.query(
            """
            SELECT id, session_id, customer_id, position, line, untold FROM (
                SELECT ranked.*, count(*) OVER (PARTITION BY ranked.session_id)::int AS untold FROM (
                    SELECT w.id, w.session_id, w.customer_id, told.position AS told, w.line,
                           row_number() OVER (PARTITION BY w.session_id ORDER BY w.line)::int AS position
                    FROM waitlist_entries w LEFT JOIN waitlist_positions told ON told.waitlist_id = w.id
                    WHERE w.session_id = ANY(\(sessions)) AND w.status = 'waiting'
                ) ranked
                JOIN unnest(\(sessions)::uuid[], \(passes.map(\.after))::bigint[]) AS pass(session_id, after_line)
                  ON pass.session_id = ranked.session_id
                WHERE ranked.line > pass.after_line AND ranked.told IS DISTINCT FROM ranked.position
            ) untold
            ORDER BY position, session_id LIMIT \(limit)
            """,
            logger: .vacancyQuiet
        ).collect()
        var told: Told = ([], [])
        var reached: [UUID: Int64?] = Dictionary(uniqueKeysWithValues: sessions.map { ($0, nil) })
        var counted: [UUID: Int] = [:]
        for row in rows {
            let (id, session, customer, position, line, untold) = try row.decode((UUID, UUID, String, Int, Int64, Int).self)
            told.entries.append(id)
            told.positions.append(position)
            try events.add(
                type: "waitlist.updated", topics: [Topic.user(customer)],
                payload: WaitlistUpdate(waiting: id, session: session, position: position))
            counted[session, default: 0] += 1
            reached[session] = counted[session]! < untold ? line : nil
        }
        return (told, reached)
    }
}

/// What a customer is told about their place in a line: `{waitlist_id, session_id, status, position, offer}`.
struct WaitlistUpdate: Encodable {
    let waitlistID: UUID
    let sessionID: UUID
    let status: WaitlistStatus
    let position: Int?
    let offer: WaitlistEntry.Offer?

    init(entry: WaitlistEntry, status: WaitlistStatus, position: Int?) {
        waitlistID = entry.id
        sessionID = entry.sessionID
        self.status = status
        self.position = position
        offer = status == .waiting ? nil : entry.offer
    }

    /// A waiting entry told where it now stands.
    init(waiting id: UUID, session: UUID, position: Int) {
        waitlistID = id
        sessionID = session
        status = .waiting
        self.position = position
        offer = nil
    }

    enum CodingKeys: String, CodingKey {
        case status, position, offer
        case waitlistID = "waitlist_id"
        case sessionID = "session_id"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(waitlistID.uuidString.lowercased(), forKey: .waitlistID)
        try container.encode(sessionID.uuidString.lowercased(), forKey: .sessionID)
        try container.encode(status, forKey: .status)
        try container.encode(position, forKey: .position)
        try container.encode(offer, forKey: .offer)
    }
}
