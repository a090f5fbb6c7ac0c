import AsyncHTTPClient
import Foundation
import Shared

/// Scenario "PostgreSQL fails over": the stack runs on a primary and a streaming standby of
/// its own (two clusters, `pg.sh standby`), `VACANCY_DATABASE_URL` naming both. Under booking
/// load and subscribers the primary is killed with SIGKILL and the standby promoted; every
/// service must follow it within 5 s.
///
/// Synchronous replication: no acknowledged booking may be lost and every subscriber must be
/// exact. Asynchronous: the walsender is stopped (SIGSTOP) for two seconds of load before the
/// kill, so the standby really lacks commits the primary acknowledged and events the fan-out
/// served; every subscriber must then be exact or reset (never an event the new history
/// lacks or has with other data, not taken back by a reset), and the figures say how many
/// bookings were lost and how many resets it took.
struct Failover {
    let synchronous: Bool
    let client: HTTPClient
    let tlsClient: HTTPClient
    let binDirectory: String
    let logDirectory: String
    let webRoot: String
    let tlsCertificate: String
    let tlsKey: String
    let pgScript: String
    let subscribers: Int
    let bookingClients: Int
    let settle: Duration
    /// Below Linux's ephemeral range (32768–60999): these clusters start late in the suite,
    /// after scenarios that open thousands of connections, and a port in that range can be
    /// held at that moment as some connection's local end ("Address already in use").
    let primaryPort = 21351
    let standbyPort = 21352

    private var mode: String { synchronous ? "sync" : "async" }

    private func pg(_ arguments: String...) throws {
        let command = ([pgScript] + arguments).joined(separator: " ")
        let status = try StackProcess.runShell(command, outputPath: "\(logDirectory)/failover-pg.log")
        guard status == 0 else {
            // What the script said goes into the failure itself: CI shows the report, not the log files.
            let log = (try? String(contentsOfFile: "\(logDirectory)/failover-pg.log", encoding: .utf8)) ?? ""
            let said = log.split(separator: "\n").suffix(12).joined(separator: " | ")
            throw ResilienceFailure("\(command) exited with \(status): \(said)")
        }
    }

    func run() async throws -> ScenarioResult {
        let primaryDirectory = "\(logDirectory)/pg-\(mode)-primary"
        let standbyDirectory = "\(logDirectory)/pg-\(mode)-standby"
        try? pg("destroy", primaryDirectory, "\(primaryPort)")
        try? pg("destroy", standbyDirectory, "\(standbyPort)")
        defer {
            // RESILIENCE_KEEP_CLUSTERS=1 leaves both (stopped) for a post-mortem.
            if ProcessInfo.processInfo.environment["RESILIENCE_KEEP_CLUSTERS"] == nil {
                try? pg("destroy", primaryDirectory, "\(primaryPort)")
                try? pg("destroy", standbyDirectory, "\(standbyPort)")
            } else {
                try? pg("stop", standbyDirectory, "\(standbyPort)")
            }
        }
        try pg("start", primaryDirectory, "\(primaryPort)")
        try pg("standby", standbyDirectory, "\(standbyPort)", "\(primaryPort)", mode)
        let url = "postgres://postgres@127.0.0.1:\(primaryPort),127.0.0.1:\(standbyPort)/vacancy?target_session_attrs=read-write"
        let newPrimaryURL = "postgres://postgres@127.0.0.1:\(standbyPort)/vacancy"
        let stack = Stack(
            binDirectory: binDirectory, databaseURL: url, logDirectory: logDirectory, webRoot: webRoot,
            tlsCertificate: tlsCertificate, tlsKey: tlsKey, postgresRestart: "false", layout: .replicated)
        defer { stack.stop() }
        try await stack.start(client: client)

        let api = RouterAPI(baseURL: stack.routerURL, client: client)
        let sessionIDs = try await api.createSessions(20, from: 300, capacity: 40)
        let crowd = try await SubscriberCrowd.connect(
            subscribers, to: stack, client: client, tlsClient: tlsClient, from: try await StackDatabase.head(url))
        defer { crowd.stop() }
        say("resilience: failover (\(mode)): \(subscribers) subscribers, \(bookingClients) booking clients on a primary and its standby")

        let gang = BookingGang(api: api, sessionIDs: sessionIDs, clients: bookingClients)
        let load = Task { await gang.run() }
        var followed: [String] = []
        var slowest: Duration = .zero
        do {
            try await Task.sleep(for: settle)
            if !synchronous {
                // Replication falls behind: what commits now is acknowledged, served, and never reaches the standby.
                try pg("walsender-stop", primaryDirectory, "\(primaryPort)")
                try await Task.sleep(for: .seconds(2))
            }
            let killed = ContinuousClock.now
            try pg("kill", primaryDirectory, "\(primaryPort)")
            try await Task.sleep(for: .seconds(1))
            try pg("promote", standbyDirectory, "\(standbyPort)")
            let promoted = ContinuousClock.now
            say("resilience: failover (\(mode)): primary killed, standby promoted \((promoted - killed).milliseconds) ms later")
            for process in stack.all {
                try await waitUntil(within: .seconds(15), "\(process.name) serving on the promoted standby") {
                    await process.isReady(client: client)
                }
                let took = ContinuousClock.now - promoted
                slowest = max(slowest, took)
                followed.append("\(process.name) \(took.milliseconds) ms")
            }
            say("resilience: failover (\(mode)): ready again after the promotion: \(followed.joined(separator: ", "))")
            try await Task.sleep(for: settle)
        } catch {
            gang.stop()
            _ = await load.value
            throw error
        }
        gang.stop()
        let outcome = await load.value

        let check = try await InvariantCheck.check(databaseURL: newPrimaryURL, outcome: outcome)
        let verdict = try await crowd.verify(databaseURL: newPrimaryURL)
        let (expected, deliveries, total, inexact) = (verdict.expected, verdict.deliveries, verdict.total, verdict.inexact)
        let resetStreams = deliveries.filter { $0.resets > 0 }.count
        for (index, delivery) in deliveries.enumerated().filter({ !$0.element.exact }).prefix(6) {
            say(
                "resilience: failover (\(mode)): subscriber \(index): delivered \(delivery.delivered), missing \(delivery.missing) "
                    + "from \(delivery.firstMissing ?? 0), unexpected \(delivery.unexpected), different \(delivery.different), "
                    + "duplicated \(delivery.duplicated), out of order \(delivery.outOfOrder), resets \(delivery.resets)")
        }
        let lostAllowed = !synchronous
        let holds =
            check.overCapacity == 0 && check.seatMismatches == 0 && check.staleEvents == 0 && check.eventGaps == 0
            && (lostAllowed || check.lostAcknowledged == 0)
        let line =
            "failover (\(mode) replication): kill -9 of the primary under \(bookingClients) booking clients, "
            + "\(outcome.requests) requests (\(outcome.statusSummary), transport errors \(outcome.transportErrors)); "
            + "every service ready on the promoted standby within \(slowest.milliseconds) ms (\(followed.joined(separator: ", "))); "
            + "\(subscribers) subscribers, \(expected.count) events each, delivered \(total.delivered), missing \(total.missing), coalesced \(total.coalesced), "
            + "unexpected \(total.unexpected), different \(total.different), taken back by a reset \(total.takenBack), "
            + "resets \(total.resets) on \(resetStreams) streams, inexact subscribers \(inexact); "
            + check.summary
        var result = ScenarioResult(
            name: "PostgreSQL failover, \(synchronous ? "synchronous" : "asynchronous") standby",
            load: "\(bookingClients) booking clients, \(subscribers) subscribers (HTTP/1.1 + HTTP/2) through the router",
            faults: "kill -9 of the primary" + (synchronous ? "" : " after 2 s of replication stopped") + "; standby promoted",
            eventsChecked: total.delivered, lost: total.missing + (lostAllowed ? 0 : check.lostAcknowledged), duplicated: total.duplicated,
            overCapacity: check.overCapacity,
            passed: holds && inexact == 0 && slowest <= .seconds(5) && outcome.serverErrors == 0 && outcome.acknowledged.count > 0
                && (synchronous || total.takenBack > 0 || total.resets > 0),
            line: line)
        result.noteCrashes(stack.takeCrashes())
        return result
    }
}
