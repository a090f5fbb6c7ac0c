import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// One PostgresNIO pool on one host of the database URL, with the calls under way on it, so
/// a pool being replaced (the primary moved, or the pool lags behind a server that came
/// back) is closed only once its work has finished.
final class DatabasePool: Sendable {
    let endpoint: DatabaseURL.Endpoint
    /// Counts pools, for the logs: which one a service is on.
    let generation: Int
    let client: PostgresClient
    /// Calls of `Database.withConnection` on this pool (waiting for a lease or using one).
    private let inFlight = Atomic<Int>(0)
    private let runner = Mutex<Task<Void, Never>?>(nil)
    /// When the pool last handed out a connection.
    private let lastLease = Mutex<ContinuousClock.Instant?>(nil)

    init(configuration: DatabaseConfiguration, endpoint: DatabaseURL.Endpoint, generation: Int, logger: Logger) {
        self.endpoint = endpoint
        self.generation = generation
        let url = configuration.url
        var pgConfig = PostgresClient.Configuration(
            host: endpoint.host,
            port: endpoint.port,
            username: url.username,
            password: url.password,
            database: url.database,
            tls: url.requireTLS ? .require(.makeClientConfiguration()) : .disable
        )
        pgConfig.options.maximumConnections = configuration.maximumConnections
        pgConfig.options.connectTimeout = configuration.acquireTimeout
        pgConfig.options.keepAliveBehavior = .init(frequency: .seconds(15))
        let statementTimeout =
            configuration.statementTimeout.components.seconds * 1000
            + configuration.statementTimeout.components.attoseconds / 1_000_000_000_000_000
        pgConfig.options.additionalStartupParameters = [
            ("statement_timeout", "\(statementTimeout)"),
            ("application_name", url.applicationName),
        ]
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .notice)
        self.client = PostgresClient(configuration: pgConfig, backgroundLogger: poolLogger)
    }

    /// Starts the pool at once, so it runs before anything asks it for a connection.
    func start() {
        let client = self.client
        runner.withLock { $0 = Task.immediate { await client.run() } }
    }

    /// Returns when the pool has stopped.
    func wait() async {
        await runner.withLock { $0 }?.value
    }

    /// A connection was handed out: the pool is making progress.
    func leased() {
        lastLease.withLock { $0 = .now }
    }

    /// Whether the pool hands out connections: it did within the last second (a busy pool
    /// is not a broken one), or it answers `SELECT 1` within a second now.
    func isWorking() async -> Bool {
        if let last = lastLease.withLock({ $0 }), ContinuousClock.now - last < .seconds(1) { return true }
        let client = self.client
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    return try await client.withConnection { connection in
                        try await connection.query("SELECT 1", logger: .vacancyQuiet).collect().count == 1
                    }
                } catch {
                    return false
                }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(1))
                return false
            }
            let answer = await group.next() ?? false
            group.cancelAll()
            return answer
        }
    }

    var busy: Int { inFlight.load(ordering: .acquiring) }

    func enter() { inFlight.add(1, ordering: .acquiringAndReleasing) }
    func leave() { inFlight.subtract(1, ordering: .acquiringAndReleasing) }

    /// Closes the pool once the calls on it have finished, or after `drainTimeout` (a
    /// statement still running ends within the statement timeout). Closing it under a running
    /// transaction would leave that transaction's next statement unanswered: PostgresNIO never
    /// answers a query written to a connection it has already closed.
    func close(after drainTimeout: Duration) async {
        let deadline = ContinuousClock.now + drainTimeout
        while busy > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        runner.withLock { $0 }?.cancel()
        await wait()
    }
}
