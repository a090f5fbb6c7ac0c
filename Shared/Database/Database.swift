import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The service's PostgreSQL pool with the two ways Vacancy uses it: single statements and
/// transactions that retry on serialization failures and deadlocks. Waiting for a
/// connection is bounded, so a database that is down answers 503 instead of hanging.
public final class Database: Service, Sendable {
    public let client: PostgresClient
    public let configuration: DatabaseConfiguration
    private let logger: Logger
    /// Calls of `withConnection` under way (waiting for a lease or using one).
    private let inFlight = Atomic<Int>(0)
    /// A close watch per pooled connection, dropped when the connection closes.
    private let watches = Mutex<[PostgresConnection.ID: ConnectionWatch]>([:])
    /// Calls waiting for a connection, failed by `run`'s sweep once past the acquire timeout.
    private let leaseDeadlines = LeaseDeadlines()

    public init(configuration: DatabaseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let url = configuration.url
        var pgConfig = PostgresClient.Configuration(
            host: url.host,
            port: url.port,
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
            ("application_name", "vacancy"),
        ]
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .notice)
        self.client = PostgresClient(configuration: pgConfig, backgroundLogger: poolLogger)
    }

    /// Runs the pool until the service is cancelled or shut down, and then keeps it open
    /// until the work already leased from it has finished (at most the statement timeout). Closing
    /// the pool under a running transaction would leave that transaction's next statement
    /// waiting forever: PostgresNIO never answers a query written to a connection it has
    /// already closed.
    public func run() async throws {
        // Started at once, so the pool is running before anything asks it for a connection.
        let pool = Task.immediate { await client.run() }
        // A statement still running ends within the statement timeout.
        let drainTimeout = configuration.statementTimeout + .seconds(1)
        let stop: @Sendable () -> Void = {
            Task {
                let deadline = ContinuousClock.now + drainTimeout
                while self.inFlight.load(ordering: .acquiring) > 0, ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(5))
                }
                pool.cancel()
            }
        }
        // One sweep for every waiting lease, instead of a timer per call.
        let deadlines = leaseDeadlines
        let sweep = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                deadlines.expire(now: .now)
            }
        }
        defer { sweep.cancel() }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await pool.value
            } onGracefulShutdown: {
                stop()
            }
        } onCancel: {
            stop()
        }
    }

    /// Leases a connection for `body`. Waiting for the lease is bounded by the configured
    /// acquire timeout (then `DatabaseUnavailable`); the body itself is not interrupted,
    /// unless its connection closes under it (then `DatabaseUnavailable` at once). A task per
    /// call holds the lease; the caller waits for its answer or the lease's deadline, which
    /// one sweep in `run` checks for every waiting call (no timer per call).
    public func withConnection<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        inFlight.add(1, ordering: .acquiringAndReleasing)
        defer { inFlight.subtract(1, ordering: .acquiringAndReleasing) }
        let timeout = configuration.acquireTimeout
        let outcome = Outcome<Result>()
        let deadlines = leaseDeadlines
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
                    outcome.set(continuation)
                    let lease = deadlines.add(.now + timeout) {
                        outcome.resume(.failure(DatabaseUnavailable(reason: "no database connection within \(timeout)")))
                        outcome.cancel()
                    }
                    outcome.attach(
                        Task {
                            let result: Swift.Result<Result, any Error>
                            do {
                                result = .success(
                                    try await self.client.withConnection { connection in
                                        // Either the deadline already answered the caller (then the
                                        // body must not run: the caller was told nothing happened), or
                                        // it no longer can.
                                        guard deadlines.remove(lease) else {
                                            throw DatabaseUnavailable(reason: "no database connection within \(timeout)")
                                        }
                                        // The body runs in a task of its own, so a connection that
                                        // closes under it gives the lease back at once.
                                        return try await self.watch(connection).run { try await body(connection) }
                                    })
                            } catch {
                                result = .failure(error)
                            }
                            _ = deadlines.remove(lease)
                            outcome.resume(result)
                        })
                }
            } onCancel: {
                outcome.cancel()
            }
        } catch let error where DatabaseUnavailable.isConnectionProblem(error) {
            throw DatabaseUnavailable(reason: String(reflecting: error))
        }
    }

    private func watch(_ connection: PostgresConnection) -> ConnectionWatch {
        let (watch, isNew) = watches.withLock { watches -> (ConnectionWatch, Bool) in
            if let watch = watches[connection.id] { return (watch, false) }
            let watch = ConnectionWatch(connection)
            watches[connection.id] = watch
            return (watch, true)
        }
        if isNew {
            let id = connection.id
            connection.closeFuture.whenComplete { _ in _ = self.watches.withLock { $0.removeValue(forKey: id) } }
        }
        return watch
    }

    /// Runs `body` in a transaction; retries the whole body on serialization failures and
    /// deadlocks (so `body` must only touch the database). Errors thrown by `body` are
    /// rethrown as they are, after the rollback.
    public func transaction<Result: Sendable>(
        maxAttempts: Int = 5,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        var attempt = 1
        while true {
            do {
                return try await withConnection { connection in
                    try await connection.transaction(logger: self.logger, body)
                }
            } catch let error as PSQLError where attempt < maxAttempts && error.isRetryableConflict {
                attempt += 1
                logger.debug("retrying transaction", metadata: ["attempt": "\(attempt)", "sqlstate": "\(error.sqlState ?? "")"])
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...(5 * attempt))))
            }
        }
    }

    /// Runs one statement and collects its rows.
    public func query(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await withConnection { connection in
            try await connection.query(query, logger: self.logger).collect()
        }
    }

    /// Answers whether the database takes a trivial query right now.
    public func isReachable() async -> Bool {
        do {
            let rows = try await query("SELECT 1")
            return rows.count == 1
        } catch {
            return false
        }
    }
}

/// The database cannot be reached right now; clients get 503 with Retry-After.
public struct DatabaseUnavailable: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "database unavailable: \(reason)" }

    /// Connection-level failures (as opposed to a statement's own error).
    static func isConnectionProblem(_ error: any Error) -> Bool {
        if error is DatabaseUnavailable { return true }
        // The pool's own error type lives in a module PostgresNIO does not re-export.
        if String(reflecting: type(of: error)).hasSuffix("ConnectionPoolError") { return true }
        if error is ChannelError { return true }
        if let error = error as? PSQLError {
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
                return true
            case .server:
                // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
                return ["57P01", "57P02", "57P03", "53300"].contains(error.sqlState ?? "")
            default:
                return false
            }
        }
        return false
    }
}

extension PSQLError {
    /// The SQLSTATE the server sent, if the error came from the server.
    public var sqlState: String? { serverInfo?[.sqlState] }

    /// Serialization failure or deadlock: the transaction can simply run again.
    public var isRetryableConflict: Bool { sqlState == "40001" || sqlState == "40P01" }
}

/// Calls waiting for a connection, each with its deadline and what to do when it passes.
private final class LeaseDeadlines: Sendable {
    private struct State {
        var next: UInt64 = 0
        var waiting: [UInt64: (deadline: ContinuousClock.Instant, expire: @Sendable () -> Void)] = [:]
    }
    private let state = Mutex(State())

    func add(_ deadline: ContinuousClock.Instant, expire: @escaping @Sendable () -> Void) -> UInt64 {
        state.withLock { state in
            let id = state.next
            state.next &+= 1
            state.waiting[id] = (deadline, expire)
            return id
        }
    }

    /// Takes the lease off the list; false if its deadline had already passed and expired it.
    @discardableResult
    func remove(_ id: UInt64) -> Bool {
        state.withLock { $0.waiting.removeValue(forKey: id) != nil }
    }

    /// Runs (once) what each lease past its deadline asked for.
    func expire(now: ContinuousClock.Instant) {
        let due = state.withLock { state -> [@Sendable () -> Void] in
            guard !state.waiting.isEmpty else { return [] }
            let ids = state.waiting.filter { $0.value.deadline <= now }.map(\.key)
            return ids.compactMap { state.waiting.removeValue(forKey: $0)?.expire }
        }
        for expire in due { expire() }
    }
}

extension PostgresConnection {
    /// PostgresNIO's `withTransaction`, but what went wrong is thrown as itself (a `Problem`
    /// the body threw, a `PSQLError` to retry on) rather than wrapped in `PostgresTransactionError`.
    func transaction<Result: Sendable>(
        logger: Logger, _ body: @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await withTransaction(logger: logger) { try await body($0) }
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.commitError ?? error.beginError ?? error
        }
    }
}
