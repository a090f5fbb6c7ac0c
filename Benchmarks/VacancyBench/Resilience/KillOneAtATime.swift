import AsyncHTTPClient
import Foundation
import Logging
import PostgresNIO
import Shared

/// Scenario "kill -9, one at a time, under load": booking clients, waitlist clients on a few
/// full sessions (joining, cancelling seats, accepting, declining, leaving) and SSE subscribers
/// (half HTTP/1.1, half HTTP/2 over TLS, all through the router) run while bookings, the
/// leading calculator (a standby is running), the fan-out and the router are each killed
/// with SIGKILL and started again, and PostgreSQL is restarted (fast shutdown) and then killed
/// with SIGKILL (crash recovery at its next start). Afterwards
/// every subscriber must have seen every event of its topic exactly once and in order (or a
/// `reset` and then the rest in order), no acknowledged booking, join or leave may be missing,
/// nothing may be over capacity, and the lines' rules must hold (nothing offered twice or out
/// of turn, no fitting entry left waiting).
struct KillOneAtATime {
    let stack: Stack
    let client: HTTPClient
    /// HTTP/2 over TLS to the router's TLS port (ALPN h2; the certificate is self-signed).
    let tlsClient: HTTPClient
    let subscribers: Int
    let bookingClients: Int
    let waitlistClients: Int
    /// Load between two faults.
    let settle: Duration

    func run() async throws -> ScenarioResult {
        let api = RouterAPI(baseURL: stack.routerURL, client: client)
        let sessionIDs = try await api.createSessions(20, from: 100, capacity: 40)
        let (lines, seeded) = try await WaitlistGang.prepare(api: api, sessions: 4, capacity: 12, clients: waitlistClients)
        let crowd = try await SubscriberCrowd.connect(
            subscribers, to: stack, client: client, tlsClient: tlsClient, from: try await StackDatabase.head(stack.databaseURL))
        defer { crowd.stop() }
        let watchers = crowd.watchers
        say(
            "resilience: kill: \(subscribers) subscribers connected (HTTP/1.1 and HTTP/2), \(bookingClients) booking clients, "
                + "\(waitlistClients) waitlist clients")

        let gang = BookingGang(api: api, sessionIDs: sessionIDs, clients: bookingClients)
        enum Finished {
            case load(BookingGang.Outcome)
            case line(BookingGang.Outcome)
            case faults([String])
        }
        var outcome = BookingGang.Outcome()
        var lineOutcome = BookingGang.Outcome()
        var faults: [String] = []
        try await withThrowingTaskGroup(of: Finished.self) { group in
            group.addTask { .load(await gang.run()) }
            group.addTask { .line(await lines.run()) }
            group.addTask {
                defer {
                    gang.stop()
                    lines.stop()
                }
                let done = try await injectFaults(gang: gang)
                try await Task.sleep(for: settle)
                return .faults(done)
            }
            for try await finished in group {
                switch finished {
                case .load(let result): outcome = result
                case .line(let result): lineOutcome = result
                case .faults(let done): faults = done
                }
            }
        }
        outcome.merge(seeded)
        outcome.merge(lineOutcome)

        let check = try await InvariantCheck.check(databaseURL: stack.databaseURL, outcome: outcome)
        let verdict = try await crowd.verify(databaseURL: stack.databaseURL)
        let (expected, deliveries, total, inexact) = (verdict.expected, verdict.deliveries, verdict.total, verdict.inexact)
        let inexactByTransport = deliveries.indices.filter { !deliveries[$0].exact }.map { $0 % 2 == 0 ? "HTTP/1.1" : "HTTP/2" }
        say("resilience: kill: inexact subscribers: \(Dictionary(grouping: inexactByTransport) { $0 }.mapValues(\.count))")
        for (index, delivery) in deliveries.enumerated().filter({ !$0.element.exact }).prefix(6) {
            let watcher = watchers[index]
            let lastArrival = watcher.events.last.map { "\((ContinuousClock.now - $0.at).milliseconds) ms ago" } ?? "never"
            say(
                "resilience: kill: subscriber \(index) (\(index % 2 == 0 ? "HTTP/1.1" : "HTTP/2")): \(watcher.connects) streams, "
                    + "delivered \(delivery.delivered), missing \(delivery.missing) from id \(delivery.firstMissing ?? 0), "
                    + "duplicated \(delivery.duplicated), last event \(watcher.lastID ?? 0) arrived \(lastArrival)")
        }
        let reconnects = watchers.map(\.connects).reduce(0, +) - watchers.count

        let line =
            "kill -9: \(faults.joined(separator: ", ")); \(bookingClients) booking clients, \(outcome.requests) requests "
            + "(\(outcome.statusSummary), transport errors \(outcome.transportErrors)), of them \(lineOutcome.requests) on waitlists "
            + "(\(lineOutcome.joined.count) joins, \(lineOutcome.leftOrDeclined.count) leaves); \(subscribers) subscribers, "
            + "\(reconnects) reconnects, \(expected.count) events each, delivered \(total.delivered), missing \(total.missing), coalesced \(total.coalesced), "
            + "duplicated \(total.duplicated), out of order \(total.outOfOrder), resets \(total.resets), inexact subscribers \(inexact); "
            + check.summary
        return ScenarioResult(
            name: "Kill -9, one at a time",
            load:
                "\(bookingClients) booking clients, \(waitlistClients) waitlist clients on 4 full sessions, \(subscribers) subscribers "
                + "(HTTP/1.1 + HTTP/2) through the router",
            faults: faults.joined(separator: "; "), eventsChecked: total.delivered,
            lost: total.missing + check.lostAcknowledged + check.waitlist.lost,
            duplicated: total.duplicated + check.waitlist.offeredTwice, overCapacity: check.overCapacity,
            passed: check.holds && inexact == 0 && outcome.serverErrors == 0 && outcome.acknowledged.count > 0
                && check.waitlist.offers > 0, line: line)
    }

    /// Each fault after `settle` of load; returns what was done, with the time to recover.
    private func injectFaults(gang: BookingGang) async throws -> [String] {
        var done: [String] = []
        func step(_ name: String, _ fault: () async throws -> Void) async throws {
            try await Task.sleep(for: settle)
            let started = ContinuousClock.now
            try await fault()
            let text = "\(name) (back in \((ContinuousClock.now - started).milliseconds) ms)"
            say("resilience: kill: \(text), \(gang.requestsSoFar) requests so far")
            done.append(text)
        }
        for process in [stack.bookings, stack.fanout, stack.router] {
            try await step("kill -9 \(process.name)") {
                process.kill9()
                try process.start()
                try await process.waitReady(client: client)
            }
        }
        try await step("kill -9 leading calculator") {
            let (leader, standby) = try await stack.calculatorLeader(client: client)
            leader.kill9()
            try await waitUntil(within: .seconds(10), "the standby calculator took over") {
                await Stack.isLeader(standby, client: client)
            }
            try leader.start()
            try await leader.waitReady(client: client)
        }
        for (name, fault) in [("PostgreSQL restart (fast)", stack.restartPostgres), ("kill -9 PostgreSQL", stack.crashPostgres)] {
            try await step(name) {
                let started = ContinuousClock.now
                try fault()
                let up = ContinuousClock.now
                say("resilience: kill: \(name): up again in \((up - started).milliseconds) ms")
                var ready: [String] = []
                for process in stack.all {
                    try await process.waitReady(client: client)
                    ready.append("\(process.name) \((ContinuousClock.now - up).milliseconds) ms")
                }
                say("resilience: kill: \(name): ready again after PostgreSQL was up: \(ready.joined(separator: ", "))")
            }
        }
        return done
    }
}
