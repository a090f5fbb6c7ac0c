import Foundation
import Shared

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

    /// Creates and starts a cluster on a port no other test uses.
    public static func start(port: Int) throws -> PrivateCluster {
        let directory = TestEnvironment.outputDirectory.appendingPathComponent("pg-private-\(port)").path
        let cluster = PrivateCluster(directory: directory, port: port)
        cluster.destroy()  // a run that was killed may have left it behind
        try cluster.run("start", "fast")
        return cluster
    }

    public func start() throws { try run("start", "fast") }
    public func stop() throws { try run("stop") }

    public func destroy() {
        try? run("destroy")
    }

    private func run(_ command: String, _ extra: String? = nil) throws {
        let script = Self.repositoryRoot.appendingPathComponent("scripts/pg.sh").path
        let status = try runCommand(["/bin/bash", script, command, directory, String(port)] + (extra.map { [$0] } ?? []))
        guard status == 0 else {
            throw ClusterError(description: "pg.sh \(command) \(directory) exited \(status)")
        }
    }

    struct ClusterError: Error, CustomStringConvertible {
        let description: String
    }
}
