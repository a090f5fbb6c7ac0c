import Foundation
import Shared

/// The port of each private cluster, one per use. Tests run in parallel, so two uses of one
/// port would share one data directory; raw values of an enum cannot repeat, so adding a
/// case with a port already taken does not compile.
public enum PrivateClusterPort: Int, Sendable {
    case bookingsOutage = 18_291
    case failoverPrimary = 18_292
    case failoverStandby = 18_293
    case presenceOutage = 18_294
}

/// A PostgreSQL cluster of a test's own, for tests that stop and start the server (which
/// would disturb every other test on the shared cluster). Managed by `scripts/pg.sh`.
public struct PrivateCluster: Sendable {
    public init(directory: String, port: Int) {
        self.directory = directory
        self.port = port
    }

    public let directory: String
    public let port: Int

    public var url: DatabaseURL {
        DatabaseURL(host: "127.0.0.1", port: port, username: "postgres", password: nil, database: "vacancy")
    }

    /// The checkout these tests were built from.
    public static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Creates and starts a cluster on a port no other test uses (`durable` for one whose
    /// crashes must keep what was committed).
    public static func start(port use: PrivateClusterPort, durable: Bool = false) async throws -> PrivateCluster {
        let port = use.rawValue
        let directory = TestEnvironment.outputDirectory.appendingPathComponent("pg-private-\(port)").path
        let cluster = PrivateCluster(directory: directory, port: port)
        await cluster.destroy()  // a run that was killed may have left it behind
        try await cluster.run("start", durable ? "durable" : "fast")
        return cluster
    }

    /// Creates and starts a streaming standby of `primary` (pg_basebackup); with
    /// `synchronous`, the primary's every commit waits for it. Durable, unlike `start`'s
    /// clusters: what a crash keeps is what the test is about.
    public static func startStandby(of primary: PrivateCluster, port use: PrivateClusterPort, synchronous: Bool)
        async throws -> PrivateCluster
    {
        let port = use.rawValue
        let directory = TestEnvironment.outputDirectory.appendingPathComponent("pg-private-\(port)").path
        let standby = PrivateCluster(directory: directory, port: port)
        await standby.destroy()
        try await standby.run("standby", String(primary.port), synchronous ? "sync" : "async")
        return standby
    }

    public func start() async throws { try await run("start", "fast") }
    public func stop() async throws { try await run("stop") }
    /// kill -9 of the server and its backends: a crash, no shutdown.
    public func kill() async throws { try await run("kill") }
    /// Makes a standby the primary (a new WAL timeline).
    public func promote() async throws { try await run("promote") }

    public func destroy() async {
        try? await run("destroy")
    }

    private func run(_ command: String, _ extra: String...) async throws {
        let script = Self.repositoryRoot.appendingPathComponent("scripts/pg.sh").path
        let log = TestEnvironment.outputDirectory.appendingPathComponent("pg-private-\(port)-\(command).log").path
        try? FileManager.default.removeItem(atPath: log)
        let status = try await runCommand(["/bin/bash", script, command, directory, String(port)] + extra, output: log)
        guard status == 0 else {
            let said = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let server = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
            throw ClusterError(
                description: "pg.sh \(command) \(directory) exited \(status): \(said.suffix(2000)) server.log: \(server.suffix(2000))")
        }
    }

    struct ClusterError: Error, CustomStringConvertible {
        let description: String
    }
}
