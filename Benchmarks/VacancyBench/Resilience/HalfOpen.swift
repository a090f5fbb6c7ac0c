import AsyncHTTPClient
import Foundation
import Shared
import TestSupport

/// Scenario "half-open": subscribers in a network namespace of the scenario's own, joined to
/// this host by a veth pair, follow a fan-out listening on the host's end. Then the link is
/// dropped on the namespace's side: no FIN, no RST, the clients are still alive and their
/// sockets still open, packets simply stop arriving. With events flowing, the fan-out must let
/// every one of those streams go within its send timeout (`TCP_USER_TIMEOUT`), its memory
/// must stay bounded, and the clients must never have heard a thing.
struct HalfOpen {
    let client: HTTPClient
    let binDirectory: String
    let logDirectory: String
    /// The main stack, whose bookings make the events the streams carry.
    let stack: Stack
    let subscribers: Int
    let sendTimeout: Duration = .seconds(5)

    static let namespace = "vacancy-ho"
    static let hostAddress = "10.77.0.1"
    static let clientAddress = "10.77.0.2"
    static let port = 18183

    private func shell(_ command: String, log: String = "half-open-setup.log") throws -> Int32 {
        try StackProcess.runShell(command, outputPath: "\(logDirectory)/\(log)")
    }

    private func teardown() {
        _ = try? shell(
            "pkill -f 'curl -sN http://10[.]77[.]0[.]1:' ; ip netns del \(Self.namespace) 2>/dev/null; ip link del vho0 2>/dev/null; true")
    }

    func run() async throws -> ScenarioResult {
        teardown()
        defer { teardown() }
        let setup = """
            set -e
            ip netns add \(Self.namespace)
            ip link add vho0 type veth peer name vho1
            ip link set vho1 netns \(Self.namespace)
            ip addr add \(Self.hostAddress)/24 dev vho0
            ip link set vho0 up
            ip netns exec \(Self.namespace) ip addr add \(Self.clientAddress)/24 dev vho1
            ip netns exec \(Self.namespace) ip link set vho1 up
            ip netns exec \(Self.namespace) ip link set lo up
            """
        guard try shell(setup) == 0 else {
            throw ResilienceFailure(
                "could not make the network namespace (needs root and ip netns; see \(logDirectory)/half-open-setup.log)")
        }
        let fanout = StackProcess(
            name: "fanout-half-open", executable: "\(binDirectory)/vacancy-fanout",
            environment: [
                "VACANCY_DATABASE_URL": stack.databaseURL, "VACANCY_LOG_LEVEL": "info", "VACANCY_LOG_FORMAT": "logfmt",
                "VACANCY_HOST": Self.hostAddress, "VACANCY_FANOUT_PORT": "\(Self.port)",
                "VACANCY_SEND_TIMEOUT_SECONDS": "\(sendTimeout.components.seconds)", "VACANCY_TOKEN_SECRET": Stack.tokenSecret,
            ],
            port: Self.port, logPath: "\(logDirectory)/fanout-half-open.log", host: Self.hostAddress)
        try fanout.start()
        defer { fanout.stop() }
        try await fanout.waitReady(client: client)
        let metrics = "http://\(Self.hostAddress):\(Self.port)/metrics"
        func open() async -> Int {
            guard let text = try? await PrometheusText.fetch(metrics) else { return -1 }
            return Int(text.sum("vacancy_fanout_subscribers"))
        }

        // Each subscriber a curl of its own in the namespace, reading and discarding the stream.
        let url = "http://\(Self.hostAddress):\(Self.port)/events?topic=availability"
        let spawn =
            "for i in $(seq 1 \(subscribers)); do ip netns exec \(Self.namespace) curl -sN \(url) -o /dev/null >/dev/null 2>&1 & done"
        guard try shell(spawn, log: "half-open-clients.log") == 0 else { throw ResilienceFailure("could not start the clients") }
        try await waitUntil(within: .seconds(30), "\(subscribers) streams open from the namespace") { await open() == subscribers }

        // Events flow while the link is down, so every stream has data waiting for an acknowledgement.
        let api = RouterAPI(baseURL: stack.routerURL, client: client)
        let session = try await api.createSession(index: 140, capacity: 10_000)
        let gang = BookingGang(api: api, sessionIDs: [session], clients: 4)
        let load = Task { await gang.run() }
        defer { gang.stop() }
        try await Task.sleep(for: .seconds(2))
        let before = fanout.memoryKiB().resident

        guard try shell("ip netns exec \(Self.namespace) ip link set vho1 down") == 0 else {
            throw ResilienceFailure("could not drop the link")
        }
        let cut = ContinuousClock.now
        var peak = before
        var letGo: Duration?
        while ContinuousClock.now - cut < sendTimeout + .seconds(30) {
            peak = max(peak, fanout.memoryKiB().resident)
            if await open() == 0 {
                letGo = ContinuousClock.now - cut
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        gang.stop()
        let outcome = await load.value
        // Nothing reached the clients: their connections are still established on their side.
        let established = try shell(
            "test $(ip netns exec \(Self.namespace) ss -Htn state established | wc -l) -ge \(subscribers)", log: "half-open-ss.log")
        let after = fanout.memoryKiB().resident
        let growth = peak - before
        let figure = letGo.map { "\($0.milliseconds) ms" } ?? "not within \((sendTimeout + .seconds(30)).milliseconds) ms"
        let line =
            "half-open: \(subscribers) subscribers in a network namespace, link dropped with no FIN or RST while events flowed "
            + "(\(outcome.requests) booking requests): all let go in \(figure) (send timeout \(sendTimeout.milliseconds) ms); "
            + "clients still think they are connected: \(established == 0 ? "yes" : "no"); fan-out resident \(before / 1024) MiB before, "
            + "peak \(peak / 1024) MiB (+\(growth) KiB), \(after / 1024) MiB after"
        let withinTimeout = letGo.map { $0 <= sendTimeout + .seconds(5) } ?? false
        return ScenarioResult(
            name: "Half-open connections",
            load: "\(subscribers) subscribers in a network namespace, bookings flowing",
            faults: "link dropped without FIN or RST", eventsChecked: 0, lost: 0, duplicated: 0, overCapacity: 0,
            passed: withinTimeout && established == 0 && growth < 32 * 1024, line: line)
    }
}
