import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOSSL

/// `vacancy-bench resilience`: starts the whole stack as processes and runs the fault
/// scenarios against it; exits non-zero if any invariant breaks.
struct ResilienceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resilience",
        abstract: "Runs the stack as separate processes and proves the invariants under faults and load."
    )

    @Option(help: "Folder with the vacancy-* executables.") var bin: String
    @Option(help: "PostgreSQL URL of an empty database for the stack.") var databaseURL: String
    @Option(help: "Folder for the services' logs.") var logs = ".test-output/resilience"
    @Option(help: "The page's folder (for the router).") var webRoot = "Services/Router/Web"
    @Option(help: "Where to write the report.") var report = "RESILIENCE.md"
    @Option(help: "Router TLS certificate (PEM), for the HTTP/2 subscribers.") var tlsCert: String
    @Option(help: "Router TLS key (PEM).") var tlsKey: String
    @Option(help: "Shell command that restarts PostgreSQL (fast) and returns when it is up.") var postgresRestart: String
    @Option(help: "Shell command that kills PostgreSQL with SIGKILL and starts it again.") var postgresCrash = "false"
    @Option(help: "Scenarios to run, comma-separated: \(Self.allScenarios.joined(separator: ", ")).")
    var scenarios = Self.allScenarios.joined(separator: ",")
    @Option(help: "Booking storm: concurrent clients.") var stormClients = 2000
    @Option(help: "Booking storm: seconds.") var stormSeconds = 60
    @Option(help: "Booking storm: sessions.") var stormSessions = 50
    @Option(help: "Kill: SSE subscribers (half HTTP/1.1, half HTTP/2).") var killSubscribers = 200
    @Option(help: "Kill: booking clients.") var killClients = 50
    @Option(help: "Kill: waitlist clients (joining, cancelling, answering offers, leaving).") var killWaitlistClients = 20
    @Option(help: "Kill: seconds of load before each fault.") var killSettle = 5
    @Option(help: "Stuck clients: subscribers that stop reading.") var stuckClients = 100
    @Option(help: "Stuck clients: seconds per phase (baseline, then trouble).") var stuckSeconds = 10
    @Option(help: "Failover: the script that manages PostgreSQL clusters (start, standby, promote, kill).")
    var pgScript = "scripts/pg.sh"
    @Option(help: "Scale: SSE subscribers.") var scaleSubscribers = 200
    @Option(help: "Scale: booking clients.") var scaleClients = 40
    @Option(help: "Half-open: subscribers in the network namespace.") var halfOpenSubscribers = 100
    @Option(help: "Failover: SSE subscribers.") var failoverSubscribers = 100
    @Option(help: "Failover: booking clients.") var failoverClients = 30
    @Option(help: "Bad input: the schemathesis executable.") var schemathesis = ".venv/bin/schemathesis"
    @Option(help: "Bad input: schemathesis examples per operation.") var schemathesisExamples = 50

    /// In the order they run: bad input first, while the tables are small; security last,
    /// so its look for secrets covers every other scenario's logs.
    static let allScenarios = ["bad-input", "storm", "kill", "listener-cut", "stuck", "half-open", "scale", "failover", "security"]

    func run() async throws {
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: stormClients + 100)
        configuration.timeout = .init(connect: .seconds(5), read: nil)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        var tlsConfiguration = HTTPClient.Configuration(tlsConfiguration: tls)
        tlsConfiguration.timeout = .init(connect: .seconds(5), read: nil)
        tlsConfiguration.httpVersion = .automatic
        let tlsClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: tlsConfiguration)
        let stack = Stack(
            binDirectory: bin, databaseURL: databaseURL, logDirectory: logs, webRoot: webRoot, tlsCertificate: tlsCert, tlsKey: tlsKey,
            postgresRestart: postgresRestart, postgresCrash: postgresCrash)
        let chosen = scenarios.split(separator: ",").map(String.init)
        for scenario in chosen where !Self.allScenarios.contains(scenario) && !["failover-sync", "failover-async"].contains(scenario) {
            throw ValidationError("unknown scenario \(scenario)")
        }
        var results: [ScenarioResult] = []
        defer { stack.stop() }
        say("resilience: starting the stack (logs in \(logs))")
        try await stack.start(client: client)
        for scenario in chosen {
            // Failover runs twice, on clusters of its own: synchronous replication, then asynchronous.
            let runs = scenario == "failover" ? ["failover-sync", "failover-async"] : [scenario]
            for name in runs {
                let started = ContinuousClock.now
                var result: ScenarioResult
                do {
                    result = try await run(name, stack: stack, client: client, tlsClient: tlsClient)
                } catch {
                    // A scenario that could not finish has failed; the others still run.
                    result = ScenarioResult(failed: name, error: error)
                }
                result.noteCrashes(stack.takeCrashes())
                say("resilience: \(result.passed ? "PASS" : "FAIL") (\(Int((ContinuousClock.now - started).seconds)) s) \(result.line)")
                results.append(result)
            }
        }
        stack.stop()
        try? await client.shutdown()
        try? await tlsClient.shutdown()
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let memory = ProcessInfo.processInfo.physicalMemory >> 30
        try ResilienceReport.write(results, to: report, machine: "\(cores) cores, \(memory) GiB")
        say("resilience: report written to \(report)")
        let failed = results.filter { !$0.passed }
        say("resilience: \(results.count - failed.count) passed, \(failed.count) failed")
        if !failed.isEmpty {
            throw ValidationError("failed: " + failed.map(\.name).joined(separator: ", "))
        }
    }
    private func run(_ scenario: String, stack: Stack, client: HTTPClient, tlsClient: HTTPClient) async throws -> ScenarioResult {
        switch scenario {
        case "storm":
            try await BookingStorm(stack: stack, client: client, clients: stormClients, seconds: stormSeconds, sessions: stormSessions)
                .run()
        case "kill":
            try await KillOneAtATime(
                stack: stack, client: client, tlsClient: tlsClient, subscribers: killSubscribers, bookingClients: killClients,
                waitlistClients: killWaitlistClients,
                settle: .seconds(killSettle)
            ).run()
        case "listener-cut":
            try await ListenerCut(stack: stack, client: client, cuts: 3).run()
        case "stuck":
            try await StuckClients(
                stack: stack, client: client, stuck: stuckClients, vanishing: 100, healthy: 20, phase: .seconds(stuckSeconds)
            ).run()
        case "scale":
            try await ScaleOut(
                client: client, tlsClient: tlsClient, binDirectory: bin, logDirectory: logs, webRoot: webRoot, tlsCertificate: tlsCert,
                tlsKey: tlsKey, databaseURL: databaseURL, subscribers: scaleSubscribers, bookingClients: scaleClients,
                settle: .seconds(killSettle)
            ).run()
        case "half-open":
            try await HalfOpen(client: client, binDirectory: bin, logDirectory: logs, stack: stack, subscribers: halfOpenSubscribers).run()
        case "failover-sync", "failover-async":
            try await Failover(
                synchronous: scenario == "failover-sync", client: client, tlsClient: tlsClient, binDirectory: bin, logDirectory: logs,
                webRoot: webRoot, tlsCertificate: tlsCert, tlsKey: tlsKey, pgScript: pgScript, subscribers: failoverSubscribers,
                bookingClients: failoverClients, settle: .seconds(killSettle)
            ).run()
        case "bad-input":
            try await BadInput(stack: stack, client: client, schemathesis: schemathesis, examples: schemathesisExamples).run()
        default:
            try await SecurityChecks(stack: stack, client: client, logDirectory: logs).run()
        }
    }
}
