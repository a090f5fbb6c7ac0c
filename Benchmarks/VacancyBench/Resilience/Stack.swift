import AsyncHTTPClient
import Foundation

/// The whole stack as separate processes on its own ports (18080…), as `make run` starts
/// it: bookings, the calculator with a standby, the fan-out and the router.
final class Stack: Sendable {
    static let routerPort = 18080
    static let routerTLSPort = 18443
    static let bookingsPort = 18081
    static let availabilityPort = 18082
    static let standbyPort = 18092
    static let fanoutPort = 18083
    static let limitedRouterPort = 18090
    static let apiKey = "vacancy-dev-key"
    /// Set explicitly so the security scenario can sign an expired token with it.
    static let tokenSecret = "resilience-token-secret-\(UInt64.random(in: 1...UInt64.max))"

    let bookings: StackProcess
    let availability: StackProcess
    let standby: StackProcess
    let fanout: StackProcess
    let router: StackProcess
    /// A second router with the default rate limits, started only by the security scenario.
    let limitedRouter: StackProcess
    let databaseURL: String
    /// A shell command that restarts PostgreSQL (fast shutdown) and returns once it is up.
    let postgresRestart: String

    var all: [StackProcess] { [bookings, availability, standby, fanout, router] }
    var routerURL: String { "http://127.0.0.1:\(Self.routerPort)" }
    var routerTLSURL: String { "https://127.0.0.1:\(Self.routerTLSPort)" }

    init(
        binDirectory: String, databaseURL: String, logDirectory: String, webRoot: String, tlsCertificate: String, tlsKey: String,
        postgresRestart: String
    ) {
        self.databaseURL = databaseURL
        self.postgresRestart = postgresRestart
        let common = [
            "VACANCY_DATABASE_URL": databaseURL, "VACANCY_LOG_LEVEL": "info", "VACANCY_LOG_FORMAT": "logfmt",
            "VACANCY_TOKEN_SECRET": Self.tokenSecret,
        ]
        func process(_ name: String, _ executable: String, port: Int, _ extra: [String: String]) -> StackProcess {
            StackProcess(
                name: name, executable: "\(binDirectory)/vacancy-\(executable)", environment: common.merging(extra) { $1 }, port: port,
                logPath: "\(logDirectory)/\(name).log")
        }
        bookings = process("bookings", "bookings", port: Self.bookingsPort, ["VACANCY_BOOKINGS_PORT": "\(Self.bookingsPort)"])
        availability = process(
            "availability", "availability", port: Self.availabilityPort, ["VACANCY_AVAILABILITY_PORT": "\(Self.availabilityPort)"])
        standby = process(
            "availability-standby", "availability", port: Self.standbyPort, ["VACANCY_AVAILABILITY_PORT": "\(Self.standbyPort)"])
        fanout = process("fanout", "fanout", port: Self.fanoutPort, ["VACANCY_FANOUT_PORT": "\(Self.fanoutPort)"])
        let upstreams = [
            "VACANCY_BOOKINGS_URL": "http://127.0.0.1:\(Self.bookingsPort)",
            "VACANCY_AVAILABILITY_URL": "http://127.0.0.1:\(Self.availabilityPort)",
            "VACANCY_FANOUT_URL": "http://127.0.0.1:\(Self.fanoutPort)",
            "VACANCY_WEB_ROOT": webRoot,
        ]
        router = process(
            "router", "router", port: Self.routerPort,
            upstreams.merging([
                "VACANCY_ROUTER_PORT": "\(Self.routerPort)",
                "VACANCY_ROUTER_TLS_PORT": "\(Self.routerTLSPort)", "VACANCY_TLS_CERT": tlsCertificate, "VACANCY_TLS_KEY": tlsKey,
                // The load comes from one address; the security scenario checks the limit on its own router.
                "VACANCY_RATE_API_PER_SECOND": "1000000", "VACANCY_RATE_API_BURST": "1000000",
                "VACANCY_RATE_SSE_PER_SECOND": "1000000", "VACANCY_RATE_SSE_BURST": "1000000",
            ]) { $1 })
        limitedRouter = process(
            "router-limited", "router", port: Self.limitedRouterPort,
            upstreams.merging(["VACANCY_ROUTER_PORT": "\(Self.limitedRouterPort)"]) { $1 })
    }

    /// Starts every process in order (bookings migrates first) and waits until each is ready.
    func start(client: HTTPClient) async throws {
        for process in all {
            try process.start()
            try await process.waitReady(client: client)
        }
    }

    func stop() {
        for process in all.reversed() { process.stop() }
    }

    /// Runs `postgresRestart`; the services stay up and must reconnect by themselves.
    func restartPostgres() throws {
        let status = try StackProcess.runShell(postgresRestart, outputPath: bookings.logPath + ".postgres-restart")
        guard status == 0 else { throw ResilienceFailure("restarting PostgreSQL (\(postgresRestart)) exited with \(status)") }
    }

    /// The calculator that leads now and the one standing by.
    func calculatorLeader(client: HTTPClient) async throws -> (leader: StackProcess, standby: StackProcess) {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if await Self.isLeader(availability, client: client) { return (availability, standby) }
            if await Self.isLeader(standby, client: client) { return (standby, availability) }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ResilienceFailure("neither calculator says it leads")
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
