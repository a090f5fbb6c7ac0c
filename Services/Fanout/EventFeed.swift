import CoreMetrics
import FanoutCore
import Foundation
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle
import Shared

/// What a fan-out reads from the event log, counted by purpose in
/// `vacancy_fanout_log_reads_total{purpose}`: what the instance costs PostgreSQL.
struct LogReads: Sendable {
    /// The newest events and the head, once at start-up.
    let window: Counter
    /// The next events after the head: once per wake-up (NOTIFY or the poll), more while a batch comes back full.
    let follow: Counter
    /// The log's epochs: at start-up and when the newest epoch changes.
    let epochs: Counter
    /// The log's bounds, for a `Last-Event-ID` outside this instance's window.
    let bounds: Counter
    /// One page of a resume's history that the window no longer holds.
    let history: Counter
    /// `vacancy_fanout_read_lag_seconds`: how old each event is (from its `created_at`, the
    /// calculator's transaction) when a follow read hands it to the hub. With
    /// `vacancy_fanout_delivery_lag_seconds` and `vacancy_fanout_pass_seconds` it splits a
    /// delivery's time into the log, the read, and the write to the subscribers.
    let readLag: CoreMetrics.Timer

    init(metrics: AppMetrics) {
        func counter(_ purpose: String) -> Counter { metrics.counter("vacancy_fanout_log_reads_total", [("purpose", purpose)]) }
        (window, follow, epochs, bounds, history) = (
            counter("window"), counter("follow"), counter("epochs"), counter("bounds"), counter("history")
        )
        readLag = metrics.timer("vacancy_fanout_read_lag_seconds")
    }
}

/// Reads the event log by id and hands each new event to the hub: woken by
/// `NOTIFY vacancy_events` (through a listener that reconnects, and raises the wake-up
/// after reconnecting so the table is read again), and polling as a safety net.
struct EventFeed: Service {
    let database: Database
    let hub: Hub
    let wake: WakeSignal
    let pollInterval: Duration
    let reads: LogReads
    let logger: Logger
    var batchSize = 1000

    func run() async throws {
        await cancelWhenGracefulShutdown {
            // Start at the log's head with the newest events already in the window, so the wave
            // of resumes that follows a restart is served from memory, not by one table read per
            // subscriber all at once. Older history is read from the table on demand.
            while !Task.isCancelled, hub.head == nil {
                do {
                    reads.window.increment()
                    let (recent, head, epoch) = try await Self.newest(database, count: hub.windowSize)
                    // The epochs up to the one the head belongs to; a newer one is the feed's to take in.
                    reads.epochs.increment()
                    let epochs = try await database.withConnection { try await LogEpochs.read(after: 0, on: $0, logger: .vacancyQuiet) }
                    _ = hub.adopt(epochs.filter { $0.epoch <= epoch })
                    hub.start(at: head, recent: recent)
                    logger.info("following the event log", metadata: ["head": "\(head)", "window": "\(recent.count)"])
                } catch {
                    logger.warning("cannot read the event log head yet", metadata: ["error": "\(String(reflecting: error))"])
                    try? await Task.sleep(for: pollInterval)
                }
            }
            while !Task.isCancelled {
                do {
                    while try await readNext() == batchSize {}
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("reading the event log failed", metadata: ["error": "\(String(reflecting: error))"])
                }
                await wake.wait(upTo: pollInterval)
            }
        }
    }

    /// Reads and dispatches the next events after the hub's head; returns how many (or the
    /// batch size, to be called again at once, after taking in a new epoch).
    func readNext() async throws -> Int {
        guard let after = hub.head else { return 0 }
        reads.follow.increment()
        let (epoch, events) = try await Self.follow(database, after: after, limit: batchSize)
        guard epoch == hub.epoch else {
            try await adoptEpochs()
            return batchSize
        }
        let now = Date()
        for event in events {
            if let loggedAt = event.frame.loggedAt { reads.readLag.recordNanoseconds(Int64(max(0, now.timeIntervalSince(loggedAt)) * 1e9)) }
        }
        hub.publish(events)
        return events.count
    }

    /// The log has a new epoch: if it began below this instance's head, the database failed
    /// over and the new primary lacks events read here. Those streams get a `reset` and
    /// close (their clients come back by `Last-Event-ID` into the new history); the feed reads
    /// on from where the new history starts.
    private func adoptEpochs() async throws {
        let known = hub.epoch
        reads.epochs.increment()
        let epochs = try await database.withConnection { try await LogEpochs.read(after: known, on: $0, logger: .vacancyQuiet) }
        let (rewoundTo, affected) = hub.adopt(epochs)
        for epoch in epochs {
            logger.notice(
                "the event log has a new epoch", metadata: ["epoch": "\(epoch.epoch)", "first_id": "\(epoch.firstID)"])
        }
        guard let rewoundTo else { return }
        logger.warning(
            "the database's history changed under this instance: events after the new primary's head are gone",
            metadata: ["head": "\(rewoundTo)", "streams_reset": "\(affected.count)"])
        let reset = FanoutStream.historyChangedFrame(head: rewoundTo)
        for subscriber in affected { subscriber.finish(.historyChanged, final: reset) }
    }

    /// The newest epoch and the events after `after`, in one statement.
    static func follow(_ database: Database, after: Int64, limit: Int) async throws -> (epoch: Int, events: [LoggedEvent]) {
        let rows = try await database.query(
            """
            WITH epoch AS (SELECT coalesce(max(epoch), 0) AS epoch FROM log_epochs)
            SELECT epoch.epoch, e.id, e.topics, e.type, e.payload::text, e.created_at
            FROM epoch LEFT JOIN LATERAL (
                SELECT * FROM events WHERE id > \(after) ORDER BY id LIMIT \(limit)
            ) e ON true
            ORDER BY e.id
            """
        )
        var epoch = 0
        var events: [LoggedEvent] = []
        for row in rows {
            let (logEpoch, id, topics, type, payload, createdAt) = try row.decode((Int, Int64?, [String]?, String?, String?, Date?).self)
            epoch = logEpoch
            guard let id, let topics, let type, let payload, let createdAt else { continue }
            events.append(Self.event(id: id, topics: topics, type: type, payload: payload, createdAt: createdAt))
        }
        return (epoch, events)
    }

    /// The newest `count` events, oldest first, the log's head and its epoch, read in one
    /// statement so the head is exactly the last of them (or the head alone when `count` is 0).
    static func newest(_ database: Database, count: Int) async throws -> ([LoggedEvent], Int64, Int) {
        let rows = try await database.query(
            """
            WITH head AS (
                SELECT coalesce(max(id), 0)::bigint AS id, (SELECT coalesce(max(epoch), 0) FROM log_epochs) AS epoch FROM events
            )
            SELECT head.id, head.epoch, e.id, e.topics, e.type, e.payload::text, e.created_at
            FROM head LEFT JOIN LATERAL (
                SELECT * FROM events WHERE id > head.id - \(count)
            ) e ON true
            ORDER BY e.id
            """
        )
        var head: Int64 = 0
        var epoch = 0
        var events: [LoggedEvent] = []
        for row in rows {
            let (logHead, logEpoch, id, topics, type, payload, createdAt) = try row.decode(
                (Int64, Int, Int64?, [String]?, String?, String?, Date?).self)
            head = logHead
            epoch = logEpoch
            guard let id, let topics, let type, let payload, let createdAt else { continue }
            events.append(Self.event(id: id, topics: topics, type: type, payload: payload, createdAt: createdAt))
        }
        return (events, head, epoch)
    }

    static func event(id: Int64, topics: [String], type: String, payload: String, createdAt: Date) -> LoggedEvent {
        LoggedEvent(
            id: id, topics: topics,
            frame: Frame(
                id: id, bytes: ServerSentEvent.frame(id: id, event: type, data: payload), loggedAt: createdAt,
                conflationKey: conflationKey(type: type, topics: topics)))
    }

    /// An `availability.updated` event carries the whole state of its session: a reader who
    /// is behind needs only the newest per session. Every other event is kept.
    static func conflationKey(type: String, topics: [String]) -> String? {
        guard type == "availability.updated" else { return nil }
        return topics.first { $0.hasPrefix(Topic.sessionPrefix) }
    }

    /// The oldest and newest ids in the log (0, 0 when empty).
    static func bounds(_ database: Database) async throws -> (oldest: Int64, newest: Int64) {
        let row = try await database.query("SELECT coalesce(min(id), 0)::bigint, coalesce(max(id), 0)::bigint FROM events")[0]
        let (oldest, newest) = try row.decode((Int64, Int64).self)
        return (oldest, newest)
    }

    /// Events after `after` (through `through`, on any of `topics` when given), by id.
    static func read(_ database: Database, after: Int64, through: Int64?, topics: [String]?, limit: Int) async throws -> [LoggedEvent] {
        let rows = try await database.query(
            """
            SELECT id, topics, type, payload::text, created_at FROM events
            WHERE id > \(after) AND (\(through)::bigint IS NULL OR id <= \(through))
              AND (\(topics)::text[] IS NULL OR topics && \(topics)::text[])
            ORDER BY id LIMIT \(limit)
            """
        )
        return try rows.map { row in
            let (id, topics, type, payload, createdAt) = try row.decode((Int64, [String], String, String, Date).self)
            return Self.event(id: id, topics: topics, type: type, payload: payload, createdAt: createdAt)
        }
    }
}

/// Once a second: ends streams whose token has expired (with a final event saying so);
/// every ping interval writes a `: ping` comment to every stream, which also finds clients
/// that vanished without closing; every metrics interval sends `admin` followers a
/// `metrics` event with this instance's figures and the database's (asked only while
/// someone follows `admin`).
struct StreamKeeper: Service {
    let hub: Hub
    let database: Database
    let pingInterval: Duration
    var metricsInterval: Duration = .seconds(5)
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastPing = ContinuousClock.now
            var lastMetrics = ContinuousClock.now
            while !Task.isCancelled {
                try? await Task.sleep(for: min(.seconds(1), metricsInterval))
                let now = Date()
                let ping = ContinuousClock.now - lastPing >= pingInterval
                if ping { lastPing = ContinuousClock.now }
                // One ping frame for every stream, handed over in one dispatch.
                let pingFrame = ping ? Frame.comment("ping") : nil
                var dispatch = FrameDispatch()
                for subscriber in hub.all() {
                    if let expiry = subscriber.expiresAt, expiry <= now {
                        subscriber.finish(.tokenExpired, final: FanoutStream.expiredFrame)
                    } else if let pingFrame {
                        _ = dispatch.push(pingFrame, to: subscriber)
                    }
                }
                dispatch.send()
                if ContinuousClock.now - lastMetrics >= metricsInterval {
                    lastMetrics = ContinuousClock.now
                    await sendMetrics()
                }
            }
        }
        // Streams are ended at shutdown by `StreamCloser`, which hears of it first.
    }

    private func sendMetrics() async {
        let admins = hub.followers(of: "admin")
        guard !admins.isEmpty else {
            _ = hub.lags.takeP99()
            return
        }
        let figures = await databaseFigures()
        guard let data = try? JSONCoding.encoder.encode(hub.snapshot(interval: metricsInterval, database: figures)) else { return }
        let frame = Frame(id: nil, bytes: ServerSentEvent.frame(id: nil, event: "metrics", data: String(decoding: data, as: UTF8.self)))
        for admin in admins { admin.push(frame) }
    }

    /// Bookings made over the last interval and the calculator's backlog; nil (and a debug
    /// line) when the database does not answer.
    private func databaseFigures() async -> DatabaseFigures? {
        let seconds = Double(metricsInterval.components.seconds)
        do {
            let row = try await database.query(
                """
                SELECT (SELECT count(*)::int FROM bookings WHERE created_at > now() - make_interval(secs => \(seconds))),
                       (SELECT count(*)::int FROM changes),
                       (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM changes)
                """
            ).first
            guard let (bookings, waiting, oldest) = try row?.decode((Int, Int, Double).self) else { return nil }
            return DatabaseFigures(bookingsPerSecond: Double(bookings) / seconds, changesWaiting: waiting, oldestChangeSeconds: oldest)
        } catch {
            logger.debug("metrics: the database did not answer", metadata: ["error": "\(String(reflecting: error))"])
            return nil
        }
    }
}
