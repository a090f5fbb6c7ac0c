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
    let rules: SeatRules
    let clock: ClockTick
    /// How often a session's moved waitlist positions may be told (see `PositionSchedule`).
    let positionInterval: Duration
    let logger: Logger
    let leadership: StatusFlag
    private let appended: Counter
    private let drained: Counter

    /// Positions told per statement of a pass: few enough that a change arriving meanwhile
    /// waits a few milliseconds at most.
    let positionsPerStatement: Int

    init(
        url: DatabaseURL, wake: WakeSignal, pollInterval: Duration, batchSize: Int, rules: SeatRules, clock: ClockTick,
        positionInterval: Duration, positionsPerStatement: Int = 200, metrics: AppMetrics, logger: Logger
    ) {
        self.positionInterval = positionInterval
        self.positionsPerStatement = positionsPerStatement
        self.appended = metrics.counter("vacancy_events_appended_total")
        self.drained = metrics.counter("vacancy_changes_drained_total")
        self.rules = rules
        self.url = url
        self.clock = clock
        self.wake = wake
        self.pollInterval = pollInterval
        self.batchSize = batchSize
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
    /// Every round trip goes through `watch`, so a connection that dies between two
    /// statements ends this leadership at once instead of leaving a statement unanswered.
    private func lead(on connection: PostgresConnection) async throws {
        let watch = ConnectionWatch(connection)
        while !Task.isCancelled {
            let locked = try await watch.run {
                try await connection.query("SELECT pg_try_advisory_lock(\(Self.leaderLockKey))", logger: .vacancyQuiet).collect()
                    .first?.decode(Bool.self) == true
            }
            if locked { break }
            try await Task.sleep(for: pollInterval)
        }
        leadership.set(true)
        logger.info("leading: this instance appends to the event log")
        var lastTick = ContinuousClock.now - clock.interval
        // What a leader before this one may have left untold.
        var positions = PositionSchedule(interval: positionInterval)
        positions.linesChanged(
            try await watch.run {
                try await connection.query("SELECT id FROM sessions WHERE waiting > 0", logger: .vacancyQuiet).collect()
                    .map { try $0.decode(UUID.self) }
            })
        while !Task.isCancelled {
            // Before anything is appended: a promoted standby's first write on its new timeline
            // begins a new epoch, past the ids the old primary may have served.
            if let epoch = try await watch.run({ try await LogEpochs.beginIfNewTimeline(on: connection, logger: .vacancyQuiet) }) {
                logger.notice(
                    epoch.skipped == nil ? "the log's first epoch begins" : "the log begins a new epoch: this primary's history is new",
                    metadata: [
                        "epoch": "\(epoch.epoch)", "timeline": "\(epoch.timeline)", "previous_last_id": "\(epoch.previousLastID)",
                        "first_id": "\(epoch.firstID)",
                    ])
            }
            if ContinuousClock.now - lastTick >= clock.interval {
                lastTick = ContinuousClock.now
                try await watch.run { try await clock.tick(on: connection) }
            }
            // Drain everything there is, then tell the moved positions that are due (a
            // statement at a time, the drain first again between two), then sleep until
            // woken, the poll interval passes or more positions are due.
            var drainedCount = 0
            repeat {
                let batch = try await watch.run { try await drainBatch(on: connection) }
                positions.linesChanged(batch.linesChanged)
                drainedCount = batch.count
            } while drainedCount == batchSize
            let now = ContinuousClock.now
            let passes = positions.passes(at: now)
            if !passes.isEmpty {
                let reached = try await watch.run { try await tellPositions(passes, on: connection) }
                positions.told(reached, at: now)
                if positions.untilNextDue(at: now) == .zero { continue }
            }
            let untilDue = positions.untilNextDue(at: ContinuousClock.now) ?? pollInterval
            await wake.wait(upTo: min(pollInterval, clock.interval, untilDue))
        }
    }

    /// Takes a batch of changes, appends the events they cause and deletes them.
    /// Returns how many changes it consumed, and the sessions whose waiting entries may have moved.
    func drainBatch(on connection: PostgresConnection) async throws -> (count: Int, linesChanged: [UUID]) {
        let batch = try await appendEvents(on: connection)
        if batch.count > 0 { drained.increment(by: batch.count) }
        return batch
    }

    /// One statement of the position `passes`: for each, the line it told up to, or nil when
    /// it reached the end (see `WaitlistUpdates.movedPositions`).
    func tellPositions(_ passes: [PositionSchedule.Pass], on connection: PostgresConnection) async throws -> [UUID: Int64?] {
        var events = EventBatch()
        let (told, reached) = try await WaitlistUpdates.movedPositions(
            passes, limit: positionsPerStatement, into: &events, on: connection)
        guard !told.entries.isEmpty else { return reached }
        let head =
            try await connection.query("SELECT \(unescaped: LogEpochs.headSQL)", logger: .vacancyQuiet).collect()
            .first?.decode(Int64.self) ?? 0
        try await append(events, after: head, on: connection, positions: told)
        return reached
    }

    private struct Change {
        var id: Int64
        var sessionID: UUID
        var bookingID: UUID?
        var waitlistID: UUID?
        var kind: ChangeKind
    }

    /// Two round trips per batch, both prepared statements (a third, between them, when the
    /// batch holds waitlist changes: `WaitlistUpdates` reads the entries they changed). The first
    /// reads the oldest changes with everything needed to publish them (session rows, bookings,
    /// last published levels, the log head). The second is ONE statement, so one transaction: it appends the events,
    /// records the levels, deletes exactly the changes it published and queues the NOTIFY sent
    /// at its commit.
    /// Only the leader, holding its lock on this very connection, appends or deletes changes,
    /// so nothing can take the batch between the two; a crash before the second commits
    /// leaves every change in place, and a session that changed in between has a newer
    /// change row that the next batch publishes.
    private func appendEvents(on connection: PostgresConnection) async throws -> (count: Int, linesChanged: [UUID]) {
        var rows: [PostgresRow] = []
        for try await row in try await connection.execute(TakeChanges(batchSize: batchSize, rules: rules), logger: .vacancyQuiet) {
            rows.append(row)
        }
        guard !rows.isEmpty else { return (0, []) }

        var changes: [Change] = []
        var head: Int64 = 0
        var sessions: [UUID: SessionAvailability] = [:]
        var bookings: [UUID: Booking] = [:]
        var previousLevels: [UUID: AvailabilityLevel] = [:]
        var highDemandAlerted: Set<UUID> = []
        for row in rows {
            let columns = row.makeRandomAccess()
            let change = Change(
                id: try columns.column("change_id").decode(Int64.self),
                sessionID: try columns.column("change_session_id").decode(UUID.self),
                bookingID: try columns.column("change_booking_id").decode(UUID?.self),
                waitlistID: try columns.column("change_waitlist_id").decode(UUID?.self),
                kind: try .stored(try columns.column("change_kind").decode(String.self), column: "changes.kind")
            )
            changes.append(change)
            head = try columns.column("head").decode(Int64.self)
            if let level = try columns.column("published_level").decode(String?.self).map({
                try AvailabilityLevel.stored($0, column: "availability_levels.level")
            }) {
                previousLevels[change.sessionID] = level
            }
            if try columns.column("high_demand_alerted").decode(Bool?.self) == true { highDemandAlerted.insert(change.sessionID) }
            if sessions[change.sessionID] == nil, try columns.column("s_id").decode(UUID?.self) != nil {
                sessions[change.sessionID] = try SessionAvailability(row: row, prefix: "s_")
            }
            if let bookingID = change.bookingID, bookings[bookingID] == nil, try columns.column("b_id").decode(UUID?.self) != nil {
                bookings[bookingID] = try Booking(row: row, prefix: "b_")
            }
        }

        // Sessions in the order they were first touched, each published once per batch.
        var sessionOrder: [UUID] = []
        var seen: Set<UUID> = []
        for change in changes where seen.insert(change.sessionID).inserted { sessionOrder.append(change.sessionID) }

        var events = EventBatch()
        var levelUpdates: (sessions: [UUID], levels: [String], highDemand: [Bool]) = ([], [], [])
        for sessionID in sessionOrder {
            guard let view = sessions[sessionID] else { continue }
            try events.add(type: "availability.updated", topics: view.topics, payload: view)
            let previous = previousLevels[sessionID]
            if let alert = Alert(previous: previous, current: view) {
                try events.add(type: "alert", topics: view.topics + [Topic.alerts], payload: alert)
            }
            let newlyHighDemand = !highDemandAlerted.contains(sessionID) && view.isHighDemand
            if newlyHighDemand {
                try events.add(type: "alert", topics: view.topics + [Topic.alerts], payload: Alert(highDemand: view))
            }
            if previous != view.level || newlyHighDemand {
                levelUpdates.sessions.append(sessionID)
                levelUpdates.levels.append(view.level.rawValue)
                levelUpdates.highDemand.append(newlyHighDemand)
            }
        }
        for change in changes {
            guard let bookingID = change.bookingID, let booking = bookings[bookingID] else { continue }
            let update = BookingUpdate(booking: booking, change: change.kind)
            try events.add(type: "booking.updated", topics: [Topic.user(booking.customerID)], payload: update)
        }

        let waitlistChanges: [WaitlistUpdates.Change] = changes.compactMap { change in
            change.waitlistID.map { (change.sessionID, $0, change.kind) }
        }
        let told = try await WaitlistUpdates.statusChanges(waitlistChanges, into: &events, on: connection)
        try await append(
            events, after: head, on: connection, consumed: changes.map(\.id), levels: levelUpdates, positions: told)
        // A join goes to the back of its line: only the other transitions move anyone.
        let moved = Set(waitlistChanges.filter { $0.kind != .waitlistJoined }.map(\.session))
        return (changes.count, Array(moved))
    }

    /// Appends `events` with the ids after `head` in one statement (see `AppendEvents`).
    private func append(
        _ events: EventBatch, after head: Int64, on connection: PostgresConnection, consumed: [Int64] = [],
        levels: (sessions: [UUID], levels: [String], highDemand: [Bool]) = ([], [], []), positions: WaitlistUpdates.Told
    ) async throws {
        let ids = (0..<Int64(events.types.count)).map { head + 1 + $0 }
        let statement = AppendEvents(
            ids: ids, topics: events.topics, types: events.types, payloads: events.payloads, consumed: consumed,
            levelSessions: levels.sessions, levels: levels.levels, highDemand: levels.highDemand,
            positionEntries: positions.entries, positions: positions.positions
        )
        for try await _ in try await connection.execute(statement, logger: .vacancyQuiet) {}
        appended.increment(by: events.types.count)
    }
}

/// The oldest changes with what publishing them needs. Each row is looked up by key (a
/// lateral subquery with LIMIT 1 cannot be flattened into a join): planned as a join, the
/// LIMIT's estimate of a full batch made PostgreSQL hash the whole bookings table for every
/// batch, a cost that grew with the table (7 ms at 11,000 bookings, for a batch of four).
/// Each session comes with its level and high demand as `SeatRules` judges them, the
/// thresholds bound as parameters.
struct TakeChanges: PostgresPreparedStatement {
    typealias Row = PostgresRow
    static let name = "vacancy_take_changes"
    static let sql = """
        WITH taken AS (SELECT id, session_id, booking_id, waitlist_id, kind FROM changes ORDER BY id LIMIT $1)
        SELECT t.id AS change_id, t.session_id AS change_session_id, t.booking_id AS change_booking_id,
               t.waitlist_id AS change_waitlist_id, t.kind AS change_kind,
               \(LogEpochs.headSQL) AS head, l.level AS published_level, l.high_demand_alerted,
               \(Session.columns(from: "s")), \(SeatRules.columns(of: "s", lowSeats: "$2", percent: "$3", windowSeconds: "$4")),
               \(Booking.columns(from: "b"))
        FROM taken t
        LEFT JOIN LATERAL (SELECT * FROM sessions WHERE id = t.session_id LIMIT 1) s ON true
        LEFT JOIN LATERAL (SELECT * FROM bookings WHERE id = t.booking_id LIMIT 1) b ON true
        LEFT JOIN LATERAL (SELECT * FROM availability_levels WHERE session_id = t.session_id LIMIT 1) l ON true
        ORDER BY t.id
        """

    let batchSize: Int
    let rules: SeatRules

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 4)
        bindings.append(batchSize)
        bindings.append(rules.lowSeats)
        bindings.append(rules.highDemand.percent)
        bindings.append(rules.highDemand.windowSeconds)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// One batch published in one statement: the events appended, the changes consumed, the
/// levels recorded and `NOTIFY vacancy_events` queued for the commit.
struct AppendEvents: PostgresPreparedStatement {
    typealias Row = Void
    static let name = "vacancy_append_events"
    static let sql = """
        WITH appended AS (
            INSERT INTO events (id, topics, type, payload)
            SELECT id, string_to_array(topics, E'\\x1f'), type, payload::jsonb
            FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS e(id, topics, type, payload)
        ),
        consumed AS (DELETE FROM changes WHERE id = ANY($5::bigint[])),
        levels AS (
            INSERT INTO availability_levels (session_id, level, high_demand_alerted)
            SELECT * FROM unnest($6::uuid[], $7::text[], $8::bool[])
            ON CONFLICT (session_id) DO UPDATE SET level = EXCLUDED.level, updated_at = now(),
                high_demand_alerted = availability_levels.high_demand_alerted OR EXCLUDED.high_demand_alerted
        ),
        positions AS (
            INSERT INTO waitlist_positions (waitlist_id, position) SELECT * FROM unnest($9::uuid[], $10::int[])
            ON CONFLICT (waitlist_id) DO UPDATE SET position = EXCLUDED.position
        )
        SELECT pg_notify('vacancy_events', '')
        """

    let ids: [Int64]
    let topics: [String]
    let types: [String]
    let payloads: [String]
    let consumed: [Int64]
    let levelSessions: [UUID]
    let levels: [String]
    let highDemand: [Bool]
    /// Waiting entries and the position each was last told (published with these events).
    let positionEntries: [UUID]
    let positions: [Int]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 10)
        bindings.append(ids)
        bindings.append(topics)
        bindings.append(types)
        bindings.append(payloads)
        bindings.append(consumed)
        bindings.append(levelSessions)
        bindings.append(levels)
        bindings.append(highDemand)
        bindings.append(positionEntries)
        bindings.append(positions)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws {}
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
    let kind: AlertKind
    let availability: SessionAvailability

    init(highDemand view: SessionAvailability) {
        kind = .highDemand
        availability = view
    }

    init?(previous: AvailabilityLevel?, current: SessionAvailability) {
        switch (previous, current.level) {
        case (let before, .low) where before != .low: kind = .low
        case (let before, .full) where before != .full: kind = .full
        case (.low?, .open), (.full?, .open): kind = .open
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
    let change: ChangeKind

    enum CodingKeys: String, CodingKey {
        case booking, change
    }
}
