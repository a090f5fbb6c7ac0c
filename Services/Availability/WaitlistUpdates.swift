import Foundation
import PostgresNIO
import Shared

/// The `waitlist.updated` events of one batch, on each entry's `user.{customer_id}` topic:
/// one per status change, in commit order (every transition is told, none twice: each is a
/// change row consumed once), then one for each waiting entry whose position moved since it
/// was last told, however many times it moved within the batch.
enum WaitlistUpdates {
    typealias Change = (session: UUID, entry: UUID, kind: ChangeKind)

    /// Adds the batch's events to `events`; returns the positions they told, to record with them.
    static func publish(_ changes: [Change], into events: inout EventBatch, on connection: PostgresConnection) async throws
        -> (entries: [UUID], positions: [Int])
    {
        guard !changes.isEmpty else { return ([], []) }
        let sessions = Array(Set(changes.map(\.session)))
        let changed = Array(Set(changes.map(\.entry)))
        let rows = try await connection.query(
            """
            \(unescaped: WaitlistEntry.select)
            WHERE w.session_id = ANY(\(sessions)) AND (w.status = 'waiting' OR w.id = ANY(\(changed)))
            ORDER BY w.session_id, w.line
            """,
            logger: .vacancyQuiet
        ).collect()
        var entries: [UUID: WaitlistEntry] = [:]
        var waiting: [(entry: WaitlistEntry, published: Int?)] = []
        for row in rows {
            let entry = try WaitlistEntry(row: row)
            entries[entry.id] = entry
            if entry.status == .waiting {
                waiting.append((entry, try row.makeRandomAccess().column("published_position").decode(Int?.self)))
            }
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
        for (entry, published) in waiting {
            guard let position = entry.position, told[entry.id] == nil, position != published else { continue }
            told[entry.id] = position
            try events.add(
                type: "waitlist.updated", topics: [Topic.user(entry.customerID)],
                payload: WaitlistUpdate(entry: entry, status: .waiting, position: position))
        }
        let positions = Array(told)
        return (positions.map(\.key), positions.map(\.value))
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
