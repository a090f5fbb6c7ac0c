import Foundation
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle
import Shared

/// The one appender of the `events` log. It holds a session-level advisory lock on a
/// connection of its own; while it has the lock it drains `changes` on that same
/// connection, so if the connection dies the lock and any unfinished batch go together.
/// Instances without the lock stand by and try again every second.
struct EventWriter: Service {
    /// Arbitrary, fixed key of the leader lock.
    static let leaderLockKey: Int64 = 0x5641_4341_4E43_5902

    let url: DatabaseURL
    let wake: WakeSignal
    let pollInterval: Duration
    let batchSize: Int
    let lowThreshold: Int
    let highDemand: HighDemandRule
    let clock: ClockTick
    let logger: Logger
    let leadership: StatusFlag
    private let appended = Counter(label: "vacancy_events_appended_total")
    private let drained = Counter(label: "vacancy_changes_drained_total")

    init(
        url: DatabaseURL, wake: WakeSignal, pollInterval: Duration, batchSize: Int, lowThreshold: Int,
        highDemand: HighDemandRule = HighDemandRule(), clock: ClockTick, logger: Logger
    ) {
        self.highDemand = highDemand
        self.url = url
        self.clock = clock
        self.wake = wake
        self.pollInterval = pollInterval
        self.batchSize = batchSize
        self.lowThreshold = lowThreshold
        self.logger = logger
        self.leadership = StatusFlag()
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await url.withConnection(logger: .vacancyQuiet, id: 1) { try await lead(on: $0) }
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("event writer connection lost; reconnecting", metadata: ["error": "\(String(reflecting: error))"])
                }
                leadership.set(false)
                try? await Task.sleep(for: pollInterval)
            }
            leadership.set(false)
        }
    }

    /// Waits to become leader, then drains until the connection fails or the task ends.
    private func lead(on connection: PostgresConnection) async throws {
        while !Task.isCancelled {
            let rows = try await connection.query("SELECT pg_try_advisory_lock(\(Self.leaderLockKey))", logger: .vacancyQuiet).collect()
            if try rows.first?.decode(Bool.self) == true { break }
            try await Task.sleep(for: pollInterval)
        }
        leadership.set(true)
        logger.info("leading: this instance appends to the event log")
        var lastTick = ContinuousClock.now - clock.interval
        while !Task.isCancelled {
            if ContinuousClock.now - lastTick >= clock.interval {
                lastTick = ContinuousClock.now
                try await clock.tick(on: connection)
            }
            // Drain everything there is, then sleep until woken or the poll interval passes.
            while try await drainBatch(on: connection) == batchSize {}
            await wake.wait(upTo: min(pollInterval, clock.interval))
        }
    }

    /// One transaction: take a batch of changes, append the events they cause, delete them.
    /// Returns how many changes it consumed.
    func drainBatch(on connection: PostgresConnection) async throws -> Int {
        try await connection.query("BEGIN", logger: .vacancyQuiet)
        do {
            let count = try await appendEvents(on: connection)
            try await connection.query("COMMIT", logger: .vacancyQuiet)
            if count > 0 { drained.increment(by: count) }
            return count
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: .vacancyQuiet)
            throw error
        }
    }

    private struct Change {
        var id: Int64
        var sessionID: UUID
        var bookingID: UUID?
        var kind: String
    }

    private func appendEvents(on connection: PostgresConnection) async throws -> Int {
        var changes: [Change] = []
        let changeRows = try await connection.query(
            "SELECT id, session_id, booking_id, kind FROM changes ORDER BY id LIMIT \(batchSize) FOR UPDATE SKIP LOCKED",
            logger: .vacancyQuiet
        )
        for try await (id, sessionID, bookingID, kind) in changeRows.decode((Int64, UUID, UUID?, String).self) {
            changes.append(Change(id: id, sessionID: sessionID, bookingID: bookingID, kind: kind))
        }
        guard !changes.isEmpty else { return 0 }

        // Sessions in the order they were first touched, each published once per batch.
        var sessionOrder: [UUID] = []
        for change in changes where !sessionOrder.contains(change.sessionID) { sessionOrder.append(change.sessionID) }
        var sessions: [UUID: Session] = [:]
        let sessionRows = try await connection.query(
            "SELECT \(unescaped: Session.columns) FROM sessions WHERE id = ANY(\(sessionOrder))", logger: .vacancyQuiet
        ).collect()
        for row in sessionRows {
            let session = try Session(row: row)
            sessions[session.id] = session
        }
        let bookingIDs = Array(Set(changes.compactMap(\.bookingID)))
        var bookings: [UUID: Booking] = [:]
        if !bookingIDs.isEmpty {
            let bookingRows = try await connection.query(
                "SELECT \(unescaped: Booking.columns) FROM bookings WHERE id = ANY(\(bookingIDs))", logger: .vacancyQuiet
            ).collect()
            for row in bookingRows {
                let booking = try Booking(row: row)
                bookings[booking.id] = booking
            }
        }
        var previousLevels: [UUID: String] = [:]
        var highDemandAlerted: Set<UUID> = []
        let levelRows = try await connection.query(
            "SELECT session_id, level, high_demand_alerted FROM availability_levels WHERE session_id = ANY(\(sessionOrder))",
            logger: .vacancyQuiet
        )
        for try await (sessionID, level, alerted) in levelRows.decode((UUID, String, Bool).self) {
            previousLevels[sessionID] = level
            if alerted { highDemandAlerted.insert(sessionID) }
        }

        let now = Date()
        var events = EventBatch()
        var levelUpdates: [(UUID, String)] = []
        var newlyHighDemand: [UUID] = []
        for sessionID in sessionOrder {
            guard let session = sessions[sessionID] else { continue }
            let view = SessionAvailability(session: session, lowThreshold: lowThreshold, now: now)
            try events.add(type: "availability.updated", topics: view.topics, payload: view)
            let previous = previousLevels[sessionID].flatMap(AvailabilityLevel.init(rawValue:))
            if let alert = Alert(previous: previous, current: view) {
                try events.add(type: "alert", topics: view.topics + ["alerts"], payload: alert)
            }
            if !highDemandAlerted.contains(sessionID), highDemand.applies(to: view, now: now) {
                try events.add(type: "alert", topics: view.topics + ["alerts"], payload: Alert(highDemand: view))
                newlyHighDemand.append(sessionID)
            }
            if previous != view.level { levelUpdates.append((sessionID, view.level.rawValue)) }
        }
        for change in changes {
            guard let bookingID = change.bookingID, let booking = bookings[bookingID] else { continue }
            let update = BookingUpdate(booking: booking, change: change.kind)
            try events.add(type: "booking.updated", topics: ["user.\(booking.customerID)"], payload: update)
        }

        let head = try await connection.query("SELECT coalesce(max(id), 0)::bigint FROM events", logger: .vacancyQuiet).collect()
        let first = try head[0].decode(Int64.self) + 1
        let ids = (0..<Int64(events.types.count)).map { first + $0 }
        try await connection.query(
            """
            INSERT INTO events (id, topics, type, payload)
            SELECT id, string_to_array(topics, E'\\x1f'), type, payload::jsonb
            FROM unnest(\(ids)::bigint[], \(events.topics)::text[], \(events.types)::text[], \(events.payloads)::text[])
                AS e(id, topics, type, payload)
            """,
            logger: .vacancyQuiet
        )
        if !levelUpdates.isEmpty {
            try await connection.query(
                """
                INSERT INTO availability_levels (session_id, level)
                SELECT * FROM unnest(\(levelUpdates.map(\.0))::uuid[], \(levelUpdates.map(\.1))::text[])
                ON CONFLICT (session_id) DO UPDATE SET level = EXCLUDED.level, updated_at = now()
                """,
                logger: .vacancyQuiet
            )
        }
        if !newlyHighDemand.isEmpty {
            try await connection.query(
                "UPDATE availability_levels SET high_demand_alerted = true WHERE session_id = ANY(\(newlyHighDemand))",
                logger: .vacancyQuiet
            )
        }
        try await connection.query("DELETE FROM changes WHERE id = ANY(\(changes.map(\.id)))", logger: .vacancyQuiet)
        try await connection.query("NOTIFY vacancy_events", logger: .vacancyQuiet)
        appended.increment(by: events.types.count)
        return changes.count
    }
}

/// Events of one batch, in append order, as the columns the INSERT unnests.
struct EventBatch {
    var types: [String] = []
    var topics: [String] = []
    var payloads: [String] = []

    mutating func add(type: String, topics eventTopics: [String], payload: some Encodable) throws {
        types.append(type)
        // U+001F cannot occur in a topic: course types and locations are refused with control characters.
        topics.append(eventTopics.joined(separator: "\u{1F}"))
        payloads.append(String(decoding: try JSONCoding.encoder.encode(payload), as: UTF8.self))
    }
}

/// A session crossing a threshold: down to low, to full, back to open, or into high demand.
struct Alert: Encodable {
    let kind: String
    let availability: SessionAvailability

    init(highDemand view: SessionAvailability) {
        kind = "high_demand"
        availability = view
    }

    init?(previous: AvailabilityLevel?, current: SessionAvailability) {
        switch (previous, current.level) {
        case (let before, .low) where before != .low: kind = "low"
        case (let before, .full) where before != .full: kind = "full"
        case (.low?, .open), (.full?, .open): kind = "open"
        default: return nil
        }
        availability = current
    }

    enum CodingKeys: String, CodingKey {
        case kind, availability
    }
}

/// The private event a customer sees about their own booking.
struct BookingUpdate: Encodable {
    let booking: Booking
    let change: String

    enum CodingKeys: String, CodingKey {
        case booking, change
    }
}
