import AsyncHTTPClient
import Foundation
import Logging
import PostgresNIO
import Shared

/// Scenario "listener cut": `pg_terminate_backend` on every LISTEN connection (the
/// calculators' and the fan-out's); a booking made right after must still reach a
/// subscriber within 2 s, and the listeners must come back by themselves.
struct ListenerCut {
    let stack: Stack
    let client: HTTPClient
    let cuts: Int

    func run() async throws -> ScenarioResult {
        let api = RouterAPI(baseURL: stack.routerURL, client: client)
        let session = try await api.createSession(index: 900, capacity: 1000)
        let watcher = EventWatcher()
        watcher.start(url: stack.routerURL + "/events?topic=availability", client: client, from: nil)
        defer { watcher.stop() }
        try await Task.sleep(for: .milliseconds(500))
        var worstDelivery = Duration.zero
        var worstReturn = Duration.zero
        var terminatedTotal = 0
        var late = 0
        try await StackDatabase.with(stack.databaseURL) { database in
            func int(_ query: PostgresQuery) async throws -> Int { try await database.int(query) }
            let listening = "SELECT count(*)::int FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND state = 'idle'"
            for cut in 1...cuts {
                let before = try await int(PostgresQuery(unsafeSQL: listening))
                let terminated = try await int(
                    "SELECT count(*)::int FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()) t"
                )
                terminatedTotal += terminated
                let cutAt = ContinuousClock.now
                let lastSeen = watcher.lastID ?? 0
                let (status, _) = try await api.send(.book(session: session, customer: "cut-\(cut)", seats: 1, hold: false))
                guard status == 201 else { throw ResilienceFailure("booking after the cut answered \(status)") }
                let bookedAt = ContinuousClock.now
                if let arrived = await watcher.firstEvent(after: lastSeen, within: .seconds(5)) {
                    worstDelivery = max(worstDelivery, arrived - bookedAt)
                    if arrived - bookedAt > .seconds(2) { late += 1 }
                } else {
                    late += 1
                    worstDelivery = .seconds(5)
                }
                // The listeners reconnect by themselves.
                while try await int(PostgresQuery(unsafeSQL: listening)) < before {
                    guard ContinuousClock.now - cutAt < .seconds(15) else {
                        throw ResilienceFailure("the LISTEN connections did not come back within 15 s of cut \(cut)")
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                worstReturn = max(worstReturn, ContinuousClock.now - cutAt)
                say(
                    "resilience: listener cut \(cut): \(terminated) LISTEN connections cut, slowest event so far \(worstDelivery.milliseconds) ms, listeners back"
                )
            }
        }
        let check = try await InvariantCheck.check(databaseURL: stack.databaseURL, outcome: BookingGang.Outcome())
        let line =
            "listener cut: \(cuts) cuts, \(terminatedTotal) LISTEN connections terminated; slowest booking → subscriber \(worstDelivery.milliseconds) ms "
            + "(over 2 s: \(late)); listeners back within \(worstReturn.milliseconds) ms; \(check.summary)"
        return ScenarioResult(
            name: "Listener cut", load: "a booking right after each cut, one subscriber through the router",
            faults: "\(cuts) × pg_terminate_backend on all LISTEN connections (\(terminatedTotal) in all)",
            eventsChecked: watcher.events.count, lost: late, duplicated: Self.duplicates(watcher.events.map(\.id)),
            overCapacity: check.overCapacity, passed: late == 0 && check.holds && terminatedTotal >= 2 * cuts, line: line)
    }

    static func duplicates(_ ids: [Int64]) -> Int {
        ids.count - Set(ids).count
    }
}
