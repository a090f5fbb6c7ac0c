import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `make run`, `make db` and `make stop` as a user runs them: from a checkout inside a folder
/// only its owner may enter (root's home on Debian), with API keys of the user's own.
@Suite("make run and make stop", .serialized)
struct LocalStackTests {
    /// The binaries this test build made (the test bundle sits beside them), so `make run` builds nothing.
    static var binDirectory: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    }

    /// Below Linux's ephemeral range (32768–60999): the tests running beside these open
    /// thousands of connections, and one of their local ports could hold a fixed port above it.
    static let ports = (postgres: 18269, router: 18280, bookings: 18281, availability: 18282, fanout: 18283)

    /// A copy of what `make run` needs (the Makefile, scripts, the web page) in a folder closed to other users.
    static func privateCheckout(_ name: String) throws -> URL {
        let closed = TestEnvironment.outputDirectory.appendingPathComponent("private-\(name)")
        try? FileManager.default.removeItem(at: closed)
        let checkout = closed.appendingPathComponent("vacancy")
        try FileManager.default.createDirectory(at: checkout.appendingPathComponent("Services/Router"), withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: closed.path)
        let root = PrivateCluster.repositoryRoot
        for item in ["Makefile", "scripts", "Services/Router/Web"] {
            try FileManager.default.copyItem(at: root.appendingPathComponent(item), to: checkout.appendingPathComponent(item))
        }
        return checkout
    }

    /// Runs `make ARGUMENTS` in `checkout` to completion, its output appended to `log`; its exit status.
    static func runMake(_ arguments: [String], in checkout: URL, environment: [String: String] = [:], log: URL) async throws -> Int32 {
        let assignments = environment.map { "\($0.key)=\($0.value)" }
        return try await runCommand(["/usr/bin/env"] + assignments + ["/usr/bin/make", "-C", checkout.path] + arguments, output: log.path)
    }

    /// Starts `make ARGUMENTS` in `checkout` and leaves it running, its output in `log`; with
    /// signals as a user's shell leaves them, so `make stop` stops it as it would for them.
    static func startMake(_ arguments: [String], in checkout: URL, environment: [String: String] = [:], log: URL) throws -> ChildProcess {
        try? FileManager.default.removeItem(at: log)
        return try ChildProcess(["/usr/bin/make", "-C", checkout.path] + arguments, environment: environment, output: log.path)
    }

    /// Whether PostgreSQL at `url` runs a query.
    static func answers(_ url: DatabaseURL) async -> Bool {
        let configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.username, password: url.password, database: url.database, tls: .disable)
        guard let connection = try? await PostgresConnection.connect(configuration: configuration, id: 1, logger: TestEnvironment.logger)
        else { return false }
        let answered = (try? await connection.query("SELECT 1", logger: TestEnvironment.logger)) != nil
        try? await connection.close()
        return answered
    }

    /// A process that looks like another checkout's bookings service to a `pkill -f` pattern.
    static func startDecoy() throws -> ChildProcess {
        let folder = TestEnvironment.outputDirectory.appendingPathComponent("decoy/.build/release")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let decoy = folder.appendingPathComponent("vacancy-bookings")
        try? FileManager.default.removeItem(at: decoy)
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: decoy.path)
        // Outlives any run of the test (it is stopped when the test ends); a decoy that ended
        // by itself would read as one that make stop killed.
        return try ChildProcess([decoy.path, "3600"], output: "/dev/null")
    }

    @Test("VACANCY_API_KEYS=me:k make run loads the demo with that key, serves the page, and make stop ends only this checkout's processes")
    func makeRunWorksWithTheCallersOwnAPIKeysAndMakeStopEndsOnlyItsOwnProcesses() async throws {
        let checkout = try Self.privateCheckout("run")
        let output = TestEnvironment.outputDirectory
        let settings = [
            "VACANCY_API_KEYS": "me:k",
            "VACANCY_BIN": Self.binDirectory,
            "PG_PORT": String(Self.ports.postgres),
            "VACANCY_ROUTER_PORT": String(Self.ports.router),
            "VACANCY_BOOKINGS_PORT": String(Self.ports.bookings),
            "VACANCY_AVAILABILITY_PORT": String(Self.ports.availability),
            "VACANCY_FANOUT_PORT": String(Self.ports.fanout),
            "VACANCY_ROUTER_TLS_PORT": "18443",
            "VACANCY_FANOUT_TLS_PORT": "18483",
            "VACANCY_LOG_LEVEL": "warning",
        ]
        let decoy = try Self.startDecoy()
        try await withCleanup(
            {
                let run = try Self.startMake(
                    ["run"], in: checkout, environment: settings, log: output.appendingPathComponent("make-run.log"))
                try await withCleanup({ try await Self.tour(run, checkout: checkout, settings: settings, decoy: decoy) }) {
                    _ = try? await Self.runMake(
                        ["stop"], in: checkout, environment: settings, log: output.appendingPathComponent("make-stop-cleanup.log"))
                    await run.stop()
                    await PrivateCluster(directory: checkout.appendingPathComponent(".data/pg").path, port: Self.ports.postgres).destroy()
                }
            },
            cleanup: { await decoy.stop() })
    }

    /// What a user of `make run` does: the page, the API with their key, a booking, `make stop`.
    static func tour(_ run: ChildProcess, checkout: URL, settings: [String: String], decoy: ChildProcess) async throws {
        let output = TestEnvironment.outputDirectory
        let router = "http://127.0.0.1:\(Self.ports.router)"
        let runLog = output.appendingPathComponent("make-run.log")
        await expectEventually(within: 120, "make run says the stack is running (see .test-output/make-run.log)") {
            let text = String(decoding: (try? Data(contentsOf: runLog)) ?? Data(), as: UTF8.self)
            return text.contains("==> Vacancy is running") || !run.isRunning
        }
        try #require(run.isRunning, "make run exited early; its log is in .test-output/make-run.log")
        #expect(try await TestHTTP.send(.GET, "\(router)/readyz").status == 200)

        // The demo loader used the configured key: the sessions are there.
        let own = try await TestHTTP.send(
            .GET, "http://127.0.0.1:\(Self.ports.bookings)/api/v1/sessions?limit=1", headers: [("Authorization", "Bearer k")])
        #expect(own.status == 200)
        #expect((own.int("count") ?? 0) > 0, "the demo sessions were loaded")
        let builtIn = try await TestHTTP.send(
            .GET, "http://127.0.0.1:\(Self.ports.bookings)/api/v1/sessions?limit=1",
            headers: [("Authorization", "Bearer vacancy-dev-key")])
        #expect(builtIn.status == 401, "the built-in key no longer works once keys are configured")

        // The page, and a booking made as the page makes it (through the router, no key: demo mode adds it).
        let page = try await TestHTTP.send(.GET, "\(router)/")
        #expect(page.status == 200 && page.text.contains("<html"))
        let sessions = try await TestHTTP.send(.GET, "\(router)/api/v1/sessions?limit=1")
        let first = try #require((sessions.json["sessions"] as? [[String: any Sendable]])?.first?["id"] as? String)
        let booking = try await TestHTTP.send(
            .POST, "\(router)/api/v1/bookings", headers: [("Idempotency-Key", UUID().uuidString)],
            body: #"{"session_id":"\#(first)","customer_id":"page-visitor","adult_count":1,"child_count":0}"#)
        #expect(booking.status == 201, "the page's demo booking: \(booking.text)")

        // make stop ends this checkout's services and cluster, and make run with them; nothing else.
        let stop = try await Self.runMake(
            ["stop"], in: checkout, environment: settings, log: output.appendingPathComponent("make-stop.log"))
        #expect(stop == 0)
        #expect(await run.waitForExit(seconds: 20), "make run ends once its services are stopped")
        #expect(run.terminationStatus == 0)
        #expect(decoy.isRunning, "a process of another checkout survives make stop")
        let after = try? await TestHTTP.send(.GET, "\(router)/readyz", timeout: .seconds(2))
        #expect(after == nil, "nothing answers on the router's port after make stop")
    }

    @Test("make db starts a cluster the postgres user can run for a checkout in a folder only root may enter")
    func makeDbWorksForRootFromAClosedFolder() async throws {
        let checkout = try Self.privateCheckout("db")
        let port = Self.ports.postgres + 1
        let log = TestEnvironment.outputDirectory.appendingPathComponent("make-db.log")
        try? FileManager.default.removeItem(at: log)
        let cluster = PrivateCluster(directory: checkout.appendingPathComponent(".data/pg").path, port: port)
        try await withCleanup(
            {
                let status = try await Self.runMake(["db", "PG_PORT=\(port)"], in: checkout, log: log)
                let server = (try? String(contentsOfFile: cluster.directory + "/server.log", encoding: .utf8)) ?? "(no server.log)"
                #expect(
                    status == 0, "make db: \(String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self)) server.log: \(server)"
                )
                #expect(await Self.answers(cluster.url), "the cluster make db started answers")
                #expect(try await Self.runMake(["stop", "PG_PORT=\(port)"], in: checkout, log: log) == 0)
                #expect(await !Self.answers(cluster.url), "make stop stopped the cluster")
            }, cleanup: { await cluster.destroy() })
    }
}
