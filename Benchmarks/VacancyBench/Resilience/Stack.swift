import AsyncHTTPClient
import Foundation
import Synchronization

/// The whole stack as separate processes on its own ports, as `make run` starts it:
/// bookings, the calculator with a standby, the fan-out and the router; or, with
/// `Layout.scaled`, two of each behind the one router.
final class Stack: Sendable {
    /// Where each process listens.
    struct Layout: Sendable {
        var router: Int
        var routerTLS: Int
        var limitedRouter: Int
        var bookings: [Int]
        /// The first leads at start; the others stand by.
        var calculators: [Int]
        var fanouts: [Int]
        /// Prefixes the processes' names and log files, so two stacks keep theirs apart.
        var name: String = ""

        /// One of each (and a standby calculator), on 18080….
        static let single = Layout(
            router: 18080, routerTLS: 18443, limitedRouter: 18090, bookings: [18081], calculators: [18082, 18092], fanouts: [18083])
        /// Two of each, on 19080….
        static let scaled = Layout(
            router: 19080, routerTLS: 19443, limitedRouter: 19090, bookings: [19081, 19091], calculators: [19082, 19092],
            fanouts: [19083, 19093], name: "scale-")
        /// One of each on 20080…, for the stack that runs on a primary and its standby.
        static let replicated = Layout(
            router: 20080, routerTLS: 20443, limitedRouter: 20090, bookings: [20081], calculators: [20082, 20092], fanouts: [20083],
            name: "failover-")
    }

    static let apiKey = "vacancy-dev-key"
    /// Set explicitly so the security scenario can sign an expired token with it.
    static let tokenSecret = "resilience-token-secret-\(UInt64.random(in: 1...UInt64.max))"

    let layout: Layout
    let bookingsInstances: [StackProcess]
    /// Starts again whatever ends on its own, as compose's `restart: unless-stopped` does.
    private let supervisor = Mutex<Task<Void, Never>?>(nil)
    let calculators: [StackProcess]
    let fanouts: [StackProcess]
    let router: StackProcess
    /// A second router with the default rate limits, started only by the security scenario.
    let limitedRouter: StackProcess
    let databaseURL: String
    /// A shell command that restarts PostgreSQL (fast shutdown) and returns once it is up.
    let postgresRestart: String
    /// A shell command that kills PostgreSQL with SIGKILL and starts it again (crash recovery).
    let postgresCrash: String

    var bookings: StackProcess { bookingsInstances[0] }
    var availability: StackProcess { calculators[0] }
    var standby: StackProcess { calculators[1] }
    var fanout: StackProcess { fanouts[0] }
    var all: [StackProcess] { bookingsInstances + calculators + fanouts + [router] }
    var routerURL: String { "http://127.0.0.1:\(layout.router)" }
    var routerTLSURL: String { "https://127.0.0.1:\(layout.routerTLS)" }

    init(
        binDirectory: String, databaseURL: String, logDirectory: String, webRoot: String, tlsCertificate: String, tlsKey: String,
        postgresRestart: String, postgresCrash: String = "false", layout: Layout = .single
    ) {
        self.layout = layout
        self.databaseURL = databaseURL
        self.postgresRestart = postgresRestart
        self.postgresCrash = postgresCrash
        let common = [
            "VACANCY_DATABASE_URL": databaseURL, "VACANCY_LOG_LEVEL": "info", "VACANCY_LOG_FORMAT": "logfmt",
            "VACANCY_TOKEN_SECRET": Self.tokenSecret,
        ]
        func process(_ name: String, _ executable: String, port: Int, _ extra: [String: String]) -> StackProcess {
            StackProcess(
                name: layout.name + name, executable: "\(binDirectory)/vacancy-\(executable)",
                environment: common.merging(extra) { $1 }, port: port, logPath: "\(logDirectory)/\(layout.name)\(name).log")
        }
        func numbered(_ name: String, _ index: Int) -> String { index == 0 ? name : "\(name)-\(index + 1)" }
        bookingsInstances = layout.bookings.enumerated().map { index, port in
            process(numbered("bookings", index), "bookings", port: port, ["VACANCY_BOOKINGS_PORT": "\(port)"])
        }
        calculators = layout.calculators.enumerated().map { index, port in
            process(
                index == 0 ? "availability" : numbered("availability-standby", index - 1),
                "availability", port: port, ["VACANCY_AVAILABILITY_PORT": "\(port)"])
        }
        fanouts = layout.fanouts.enumerated().map { index, port in
            process(numbered("fanout", index), "fanout", port: port, ["VACANCY_FANOUT_PORT": "\(port)"])
        }
        func list(_ ports: [Int]) -> String { ports.map { "http://127.0.0.1:\($0)" }.joined(separator: ",") }
        let upstreams = [
            "VACANCY_BOOKINGS_URL": list(layout.bookings),
            "VACANCY_AVAILABILITY_URL": list(layout.calculators),
            "VACANCY_FANOUT_URL": list(layout.fanouts),
            "VACANCY_WEB_ROOT": webRoot,
        ]
        router = process(
            "router", "router", port: layout.router,
            upstreams.merging([
                "VACANCY_ROUTER_PORT": "\(layout.router)",
                "VACANCY_ROUTER_TLS_PORT": "\(layout.routerTLS)", "VACANCY_TLS_CERT": tlsCertificate, "VACANCY_TLS_KEY": tlsKey,
                // The load comes from one address; the security scenario checks the limit on its own router.
                "VACANCY_RATE_API_PER_SECOND": "1000000", "VACANCY_RATE_API_BURST": "1000000",
                "VACANCY_RATE_SSE_PER_SECOND": "1000000", "VACANCY_RATE_SSE_BURST": "1000000",
            ]) { $1 })
        limitedRouter = process(
            "router-limited", "router", port: layout.limitedRouter,
            upstreams.merging(["VACANCY_ROUTER_PORT": "\(layout.limitedRouter)"]) { $1 })
    }

    /// Starts every process in order (bookings migrates first) and waits until each is ready.
    func start(client: HTTPClient) async throws {
        for process in all {
            try process.start()
            try await process.waitReady(client: client)
        }
        let processes = all
        supervisor.withLock { supervisor in
            supervisor = Task {
                while !Task.isCancelled {
                    for process in processes { try? process.restartIfExited() }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
        }
    }

    func stop() {
        supervisor.withLock { $0?.cancel() }
        for process in all.reversed() { process.stop() }
    }

    /// The processes that ended on their own since the last call (and were started again),
    /// as `name (signal 4)`; empty when none did.
    func takeCrashes() -> [String] {
        all.flatMap { process in process.takeCrashes().map { "\(process.name) (\($0))" } }
    }

    /// Runs `postgresRestart`; the services stay up and must reconnect by themselves.
    func restartPostgres() throws {
        let status = try StackProcess.runShell(postgresRestart, outputPath: bookings.logPath + ".postgres-restart")
        guard status == 0 else { throw ResilienceFailure("restarting PostgreSQL (\(postgresRestart)) exited with \(status)") }
    }

    /// Runs `postgresCrash`: kill -9 of the server, then a start with crash recovery.
    func crashPostgres() throws {
        let status = try StackProcess.runShell(postgresCrash, outputPath: bookings.logPath + ".postgres-crash")
        guard status == 0 else { throw ResilienceFailure("crashing PostgreSQL (\(postgresCrash)) exited with \(status)") }
    }

    /// The calculator that leads now and one standing by.
    func calculatorLeader(client: HTTPClient) async throws -> (leader: StackProcess, standby: StackProcess) {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            for (index, calculator) in calculators.enumerated() where await Self.isLeader(calculator, client: client) {
                return (calculator, calculators[(index + 1) % calculators.count])
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ResilienceFailure("no calculator says it leads")
    }

    /// What the calculator's `GET /leader` says.
    static func isLeader(_ process: StackProcess, client: HTTPClient) async -> Bool {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(process.port)/leader")
        request.headers.add(name: "Connection", value: "close")
        guard let response = try? await client.execute(request, timeout: .seconds(2)),
            let body = try? await response.body.collect(upTo: 1 << 16)
        else { return false }
        let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
        return object?["leader"] as? Bool == true
    }
}
