import FanoutCore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Shared
import Synchronization

/// Who is watching: open streams per public topic across every fan-out instance. Each
/// instance reports its own counts to PostgreSQL (`presence_reports`, one row per instance)
/// every interval and reads back everyone else's in the same statement; a row not reported
/// for three intervals no longer counts, so a killed instance's viewers vanish on their own.
/// A cluster-wide count is the others' as last read plus this instance's own, live.
final class Presence: Sendable {
    /// This instance's row: host, process and a random part, unique per start.
    let instance: String
    let interval: Duration

    private struct State {
        /// Every other instance's counts, summed, as last read.
        var others: [String: Int] = [:]
        /// When `others` was last read (nil before the first report).
        var at: Date?
        /// The count each topic's local followers were last told.
        var told: [String: Int] = [:]
    }
    private let state = Mutex(State())
    private let hub: Hub

    init(hub: Hub, interval: Duration) {
        self.hub = hub
        self.interval = interval
        let host = ProcessInfo.processInfo.hostName
        instance = "\(host)/\(ProcessInfo.processInfo.processIdentifier)/\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// The cluster-wide counts of `topics` (public ones: 0 for a topic nobody watches), and
    /// when the other instances' share was read.
    func counts(of topics: [String]) -> (at: Date?, topics: [String: Int]) {
        let local = hub.followerCounts(of: topics)
        return state.withLock { state in
            (state.at, local.reduce(into: [:]) { counts, entry in counts[entry.key] = entry.value + (state.others[entry.key] ?? 0) })
        }
    }

    /// One round: this instance's counts written, every other live instance's read.
    func report(_ database: Database) async throws {
        let local = hub.publicTopicCounts()
        let counts = String(decoding: try JSONCoding.encoder.encode(local), as: UTF8.self)
        let freshFor = 3 * Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        // The write is not visible to this statement's read: the others' rows are summed
        // without this instance's, whose counts are taken live.
        let rows = try await database.query(
            """
            WITH mine AS (
                INSERT INTO presence_reports (instance, counts, reported_at) VALUES (\(instance), \(counts)::jsonb, now())
                ON CONFLICT (instance) DO UPDATE SET counts = excluded.counts, reported_at = excluded.reported_at
                RETURNING 1
            ), gone AS (
                DELETE FROM presence_reports WHERE reported_at < now() - interval '1 hour' RETURNING 1
            )
            SELECT topic, sum(watching::int)::int
            FROM presence_reports, jsonb_each_text(counts) AS c(topic, watching)
            WHERE instance <> \(instance) AND reported_at > now() - make_interval(secs => \(freshFor))
            GROUP BY topic
            """
        )
        var others: [String: Int] = [:]
        for row in rows {
            let (topic, watching) = try row.decode((String, Int).self)
            others[topic] = watching
        }
        state.withLock { state in
            state.others = others
            state.at = Date()
        }
    }

    /// Tells each topic's local followers its count where it changed since they were last
    /// told (`event: presence`, no id). Returns how many topics were told.
    @discardableResult
    func tellChanges() -> Int {
        let local = hub.publicTopicCounts()
        let changes: [(String, Int)] = state.withLock { state in
            var changes: [(String, Int)] = []
            for (topic, here) in local {
                let watching = here + (state.others[topic] ?? 0)
                if state.told[topic] != watching {
                    state.told[topic] = watching
                    changes.append((topic, watching))
                }
            }
            // A topic nobody here follows any more is told afresh when someone does again.
            state.told = state.told.filter { local[$0.key] != nil }
            return changes
        }
        for (topic, watching) in changes {
            let frame = Self.frame(topic: topic, watching: watching)
            var dispatch = FrameDispatch()
            for subscriber in hub.followers(of: topic) { _ = dispatch.push(frame, to: subscriber) }
            dispatch.send()
        }
        return changes.count
    }

    /// This instance's row removed (a clean shutdown: its viewers leave the counts at once).
    func withdraw(_ database: Database) async throws {
        _ = try await database.query("DELETE FROM presence_reports WHERE instance = \(instance)")
    }

    static func frame(topic: String, watching: Int) -> Frame {
        struct Payload: Encodable {
            let topic: String
            let watching: Int
        }
        let data = (try? JSONCoding.encoder.encode(Payload(topic: topic, watching: watching))) ?? Data()
        // Superseded by the next count of the same topic in a slow reader's backlog.
        return Frame(
            id: nil, bytes: ServerSentEvent.frame(id: nil, event: "presence", data: String(decoding: data, as: UTF8.self)),
            conflationKey: "presence." + topic)
    }
}

/// Reports presence every interval and tells subscribers what changed; a report that fails
/// (PostgreSQL down) is logged and counted, the counts go stale (their `at` says since
/// when) and no stream waits for it. Withdraws this instance's row at a clean shutdown.
struct PresenceReporter: Service {
    let presence: Presence
    let database: Database
    let metrics: AppMetrics
    let logger: Logger

    func run() async throws {
        let ok = metrics.counter("vacancy_fanout_presence_reports_total", [("outcome", "ok")])
        let failed = metrics.counter("vacancy_fanout_presence_reports_total", [("outcome", "failed")])
        await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                do {
                    try await presence.report(database)
                    ok.increment()
                    if failing { logger.info("presence reports resumed") }
                    failing = false
                } catch {
                    failed.increment()
                    if !failing {
                        logger.warning("presence report failed; counts go stale", metadata: ["error": "\(String(reflecting: error))"])
                    }
                    failing = true
                }
                presence.tellChanges()
                try? await Task.sleep(for: presence.interval)
            }
        }
        try? await presence.withdraw(database)
    }
}
