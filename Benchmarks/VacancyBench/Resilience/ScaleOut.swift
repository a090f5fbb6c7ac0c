import AsyncHTTPClient
import Foundation
import PostgresNIO
import Shared

/// Scenario "scale": two bookings, two calculators and two fan-outs behind one router, on a
/// database of their own. Under booking load and subscribers spread over both fan-outs, one
/// instance of each service is killed with SIGKILL in turn and started again: requests keep
/// succeeding through the router (a failed connect is retried elsewhere; at most what was in
/// flight on the killed instance is lost, with a 502), the killed fan-out's subscribers
/// resume on the other exactly, and nothing is oversold or lost.
struct ScaleOut {
    let client: HTTPClient
    let tlsClient: HTTPClient
    let binDirectory: String
    let logDirectory: String
    let webRoot: String
    let tlsCertificate: String
    let tlsKey: String
    /// The main stack's database; this scenario makes a database of its own beside it.
    let databaseURL: String
    let subscribers: Int
    let bookingClients: Int
    let settle: Duration

    func run() async throws -> ScenarioResult {
        let url = try await Self.freshDatabase(beside: databaseURL, named: "vacancy_scale")
        let stack = Stack(
            binDirectory: binDirectory, databaseURL: url, logDirectory: logDirectory, webRoot: webRoot, tlsCertificate: tlsCertificate,
            tlsKey: tlsKey, postgresRestart: "false", layout: .scaled)
        defer { stack.stop() }
        try await stack.start(client: client)

        let api = RouterAPI(baseURL: stack.routerURL, client: client)
        let sessionIDs = try await api.createSessions(20, from: 500, capacity: 40)
        let crowd = try await SubscriberCrowd.connect(
            subscribers, to: stack, client: client, tlsClient: tlsClient, from: try await StackDatabase.head(url))
        defer { crowd.stop() }
        var spread: [String] = []
        for fanout in stack.fanouts {
            let open = try await StuckClients.metric("vacancy_fanout_subscribers", client: client, port: fanout.port)
            spread.append("\(fanout.name) \(open)")
        }
        say("resilience: scale: \(subscribers) subscribers through the router: \(spread.joined(separator: ", "))")

        let gang = BookingGang(api: api, sessionIDs: sessionIDs, clients: bookingClients)
        let load = Task { await gang.run() }
        // The fan-out that is never killed: what one instance costs PostgreSQL under this load.
        let measured = stack.fanouts[1]
        let costBefore = try await FanoutCost.sample(client: client, port: measured.port, databaseURL: url)
        var faults: [String] = []
        do {
            let (leader, _) = try await stack.calculatorLeader(client: client)
            for process in [stack.bookingsInstances[0], leader, stack.fanouts[0]] {
                try await Task.sleep(for: settle)
                let before = gang.requestsSoFar
                process.kill9()
                // Load on the other instance alone for a while, then the killed one comes back.
                try await Task.sleep(for: settle)
                let meanwhile = gang.requestsSoFar - before
                try process.start()
                try await process.waitReady(client: client)
                faults.append("kill -9 \(process.name) (\(meanwhile) requests meanwhile)")
                say("resilience: scale: kill -9 \(process.name): \(meanwhile) requests while it was down, back")
            }
            try await Task.sleep(for: settle)
        } catch {
            gang.stop()
            _ = await load.value
            throw error
        }
        let cost = try await FanoutCost.sample(client: client, port: measured.port, databaseURL: url).since(costBefore)
        gang.stop()
        let outcome = await load.value
        let retries = try await StuckClients.metric("vacancy_router_retries_total", client: client, port: stack.layout.router)

        let check = try await InvariantCheck.check(databaseURL: url, outcome: outcome)
        let verdict = try await crowd.verify(databaseURL: url)
        let (expected, total, inexact) = (verdict.expected, verdict.total, verdict.inexact)
        let resumed = crowd.watchers.filter { $0.connects > 1 }.count
        let badGateway = outcome.byStatus[502] ?? 0
        // At most one request in flight per client on the killed instance, for each of the two kills behind the API.
        let inFlightBound = 2 * bookingClients
        let line =
            "scale: two of each behind one router; \(faults.joined(separator: ", ")); \(bookingClients) booking clients, "
            + "\(outcome.requests) requests (\(outcome.statusSummary), transport errors \(outcome.transportErrors)), "
            + "router retries \(retries), 502s \(badGateway) (bound \(inFlightBound)); \(subscribers) subscribers "
            + "(\(spread.joined(separator: ", "))), \(resumed) resumed on another instance, \(expected.count) events each, delivered "
            + "\(total.delivered), missing \(total.missing), coalesced \(total.coalesced), duplicated \(total.duplicated), different \(total.different), "
            + "resets \(total.resets), inexact subscribers \(inexact); \(measured.name) (never killed) cost PostgreSQL \(cost); "
            + check.summary
        var result = ScenarioResult(
            name: "Two of each, kill -9 one of each",
            load: "\(bookingClients) booking clients, \(subscribers) subscribers (HTTP/1.1 + HTTP/2) through one router",
            faults: faults.joined(separator: "; "), eventsChecked: total.delivered, lost: total.missing + check.lostAcknowledged,
            duplicated: total.duplicated, overCapacity: check.overCapacity,
            passed: check.holds && inexact == 0 && outcome.serverErrors == 0 && badGateway <= inFlightBound
                && outcome.acknowledged.count > 0 && resumed > 0,
            line: line)
        result.noteCrashes(stack.takeCrashes())
        return result
    }

    /// A new, empty database named `name` on the server of `url` (dropped first if a run left it).
    static func freshDatabase(beside url: String, named name: String) async throws -> String {
        try await StackDatabase.with(url) { database in
            _ = try await database.rows(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"))
            _ = try await database.rows(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        }
        let parsed = try DatabaseURL(parsing: url)
        return "postgres://\(parsed.username)@\(parsed.endpoints.map(\.description).joined(separator: ","))/\(name)"
    }
}

/// What one fan-out asked of PostgreSQL over a stretch of the run: its reads of the event
/// log by purpose (`vacancy_fanout_log_reads_total`), against the events appended meanwhile,
/// and the connections each service holds at the end (by `application_name`).
struct FanoutCost: CustomStringConvertible {
    var at = ContinuousClock.now
    var reads: [String: Int] = [:]
    var head: Int64 = 0
    var connections: [String: Int] = [:]
    var seconds = 0.0
    var events: Int64 = 0

    static let purposes = ["follow", "history", "bounds", "epochs", "window"]

    static func sample(client: HTTPClient, port: Int, databaseURL: String) async throws -> FanoutCost {
        var cost = FanoutCost()
        for purpose in purposes {
            cost.reads[purpose] = try await StuckClients.metric(
                "vacancy_fanout_log_reads_total{purpose=\"\(purpose)\"}", client: client, port: port)
        }
        cost.head = try await StackDatabase.head(databaseURL)
        cost.connections = try await StackDatabase.with(databaseURL) { database in
            var connections: [String: Int] = [:]
            for row in try await database.rows(
                "SELECT application_name, count(*)::int FROM pg_stat_activity WHERE application_name LIKE 'vacancy-%' GROUP BY 1")
            {
                let (name, count) = try row.decode((String, Int).self)
                connections[name] = count
            }
            return connections
        }
        return cost
    }

    /// The reads and events between `earlier` and this sample, with this sample's connections.
    func since(_ earlier: FanoutCost) -> FanoutCost {
        var delta = self
        delta.reads = reads.merging(earlier.reads) { $0 - $1 }
        delta.events = head - earlier.head
        let elapsed = at - earlier.at
        delta.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return delta
    }

    var readsPerSecond: Double { Double(reads.values.reduce(0, +)) / max(seconds, 0.001) }

    var description: String {
        let perPurpose = Self.purposes.compactMap { purpose in reads[purpose].flatMap { $0 > 0 ? "\(purpose) \($0)" : nil } }
        let held = connections.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        return String(
            format: "%.1f log reads/s over %.0f s (%@) while %.0f events/s were appended", readsPerSecond, seconds,
            perPurpose.joined(separator: ", "), Double(events) / max(seconds, 0.001))
            + "; connections held at the end: \(held.joined(separator: ", "))"
    }
}
