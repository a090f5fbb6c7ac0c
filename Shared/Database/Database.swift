import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The service's PostgreSQL pool with the two ways Vacancy uses it: single statements and
/// transactions that retry on serialization failures and deadlocks. Waiting for a
/// connection is bounded, so a database that is down answers 503 instead of hanging.
///
/// The pool is on one host of the URL: the first that `target_session_attrs` accepts (the
/// writable primary). When a call loses its connection, a lease times out or a connection
/// closes under the pool, `run` looks at every host again (about four times a second while
/// none answers): it moves to the host that now takes writes, or replaces a pool that makes
/// no progress against a server that is back (PostgresNIO's own reconnection backs off for
/// seconds). While no host would take writes, calls fail at once with `DatabaseUnavailable`
/// (503 with Retry-After), never a hang.
public final class Database: Service, Sendable {
    public let configuration: DatabaseConfiguration
    private let logger: Logger

    private struct State {
        var pool: DatabasePool
        var generations = 1
        /// What the last look found when no host would take the service's connections.
        var noSuitableHost: NoSuitableHost?
    }
    private let state: Mutex<State>
    /// Raised by anything that suggests the pool is in trouble; `run` then looks again.
    private let trouble = WakeSignal()
    private let stopping = Atomic<Bool>(false)
    /// A close watch per leased connection, dropped when the connection closes.
    private let watches = Mutex<[ObjectIdentifier: ConnectionWatch]>([:])
    /// Calls waiting for a connection, failed by `run`'s sweep once past the acquire timeout.
    private let leaseDeadlines = LeaseDeadlines()
    /// How often the hosts are looked at while none takes writes.
    static let lookInterval: Duration = .milliseconds(250)

    private let metrics: AppMetrics

    /// `metrics` receives `vacancy_database_pool_host{host}` (1 for the host the pool is on)
    /// and `vacancy_database_pool_changes_total{reason}`.
    public init(configuration: DatabaseConfiguration, logger: Logger, metrics: AppMetrics = AppMetrics()) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        let first = DatabasePool(configuration: configuration, endpoint: configuration.url.endpoints[0], generation: 1, logger: logger)
        first.start()
        self.state = Mutex(State(pool: first))
    }

    /// The host the pool is on now.
    public var endpoint: DatabaseURL.Endpoint { state.withLock { $0.pool.endpoint } }

    /// Follows the writable primary until the service is cancelled or shut down, and then
    /// keeps the pool open until the work already leased from it has finished (at most the
    /// statement timeout).
    public func run() async throws {
        // One sweep for every waiting lease, instead of a timer per call.
        let deadlines = leaseDeadlines
        let sweep = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                deadlines.expire(now: .now)
            }
        }
        defer { sweep.cancel() }
        let stop: @Sendable () -> Void = {
            self.stopping.store(true, ordering: .releasing)
            self.trouble.raise()
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    await follow(retire: { old in group.addTask { await old.close(after: self.drainTimeout) } })
                }
            } onGracefulShutdown: {
                stop()
            }
        } onCancel: {
            stop()
        }
        await state.withLock { $0.pool }.close(after: drainTimeout)
    }

    /// A statement still running ends within the statement timeout.
    private var drainTimeout: Duration { configuration.statementTimeout + .seconds(1) }

    /// The loop behind `run`: looks at the hosts at start, whenever trouble is raised, and
    /// every `lookInterval` while none takes writes.
    private func follow(retire: (DatabasePool) -> Void) async {
        var healthy = await look(retire: retire)
        while !stopping.load(ordering: .acquiring) {
            await trouble.wait(upTo: healthy ? .seconds(60) : Self.lookInterval)
            guard !stopping.load(ordering: .acquiring) else { break }
            healthy = await look(retire: retire)
        }
    }

    /// Finds the host that takes writes and makes sure the pool is on it and working;
    /// returns whether it is.
    private func look(retire: (DatabasePool) -> Void) async -> Bool {
        let url = configuration.url
        switch await url.findSuitableHost(logger: .vacancyQuiet) {
        case .failure(let none):
            let first = state.withLock { state -> Bool in
                defer { state.noSuitableHost = none }
                return state.noSuitableHost == nil
            }
            if first {
                logger.warning(
                    "database: no host takes writes; answering 503 until one does",
                    metadata: ["hosts": "\(url.endpoints.map(\.description).joined(separator: ","))", "found": "\(none)"])
            }
            return false
        case .success(let endpoint):
            let current = state.withLock { $0.pool }
            if current.endpoint == endpoint, await current.isWorking() {
                metrics.gauge("vacancy_database_pool_host", [("host", "\(endpoint)")]).record(1)
                let recovered = state.withLock { state -> Bool in
                    defer { state.noSuitableHost = nil }
                    return state.noSuitableHost != nil
                }
                if recovered { logger.notice("database: serving again", metadata: ["host": "\(endpoint)"]) }
                return true
            }
            let fresh = state.withLock { state -> DatabasePool in
                state.generations += 1
                return DatabasePool(configuration: configuration, endpoint: endpoint, generation: state.generations, logger: logger)
            }
            fresh.start()
            state.withLock { state in
                state.pool = fresh
                state.noSuitableHost = nil
            }
            retire(current)
            let moved = current.endpoint != endpoint
            metrics.counter("vacancy_database_pool_changes_total", [("reason", moved ? "primary_moved" : "stalled")]).increment()
            if moved { metrics.gauge("vacancy_database_pool_host", [("host", "\(current.endpoint)")]).record(0) }
            metrics.gauge("vacancy_database_pool_host", [("host", "\(endpoint)")]).record(1)
            logger.notice(
                current.endpoint == endpoint
                    ? "database: new pool on the same host (the old one made no progress)" : "database: following the writable primary",
                metadata: ["host": "\(endpoint)", "previous": "\(current.endpoint)", "pool": "\(fresh.generation)"])
            return true
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
        let pool = try state.withLock { state throws(DatabaseUnavailable) -> DatabasePool in
            if let none = state.noSuitableHost { throw DatabaseUnavailable(reason: none.description) }
            return state.pool
        }
        pool.enter()
        defer { pool.leave() }
        let timeout = configuration.acquireTimeout
        let outcome = Outcome<Result>()
        let deadlines = leaseDeadlines
        do {
            let result = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
                    outcome.set(continuation)
                    let lease = deadlines.add(.now + timeout) {
                        outcome.resume(.failure(DatabaseUnavailable(reason: "no database connection within \(timeout)")))
                        outcome.cancel()
                    }
                    outcome.attach(
                        Task {
                            var result: Swift.Result<Result, any Error>
                            var stale = 0
                            repeat {
                                do {
                                    result = .success(
                                        try await pool.client.withConnection { connection in
                                            // Closed before anything ran on it (the statement before
                                            // failed after its rows and PostgresNIO closed it, and the
                                            // pool has not seen that yet): take another.
                                            if connection.isClosed { throw StaleConnection() }
                                            // Either the deadline already answered the caller (then the
                                            // body must not run: the caller was told nothing happened),
                                            // or it no longer can.
                                            guard deadlines.remove(lease) else {
                                                throw DatabaseUnavailable(reason: "no database connection within \(timeout)")
                                            }
                                            pool.leased()
                                            // The body runs in a task of its own, so a connection that
                                            // closes under it gives the lease back at once.
                                            return try await self.watch(connection).run { try await body(connection) }
                                        })
                                } catch is StaleConnection {
                                    stale += 1
                                    result = .failure(DatabaseUnavailable(reason: "every connection the pool handed out was closed"))
                                    // A moment for the pool to see the close, then another.
                                    try? await Task.sleep(for: .milliseconds(10 * stale))
                                    continue
                                } catch {
                                    result = .failure(error)
                                }
                                break
                            } while stale < 5
                            _ = deadlines.remove(lease)
                            outcome.resume(result)
                        })
                }
            } onCancel: {
                outcome.cancel()
            }
            return result
        } catch let error where DatabaseUnavailable.isConnectionProblem(error) {
            trouble.raise()
            throw DatabaseUnavailable(reason: String(reflecting: error))
        }
    }

    private func watch(_ connection: PostgresConnection) -> ConnectionWatch {
        // Pools come and go, and each numbers its connections from the start: the key is the object.
        let key = ObjectIdentifier(connection)
        let (watch, isNew) = watches.withLock { watches -> (ConnectionWatch, Bool) in
            if let watch = watches[key] { return (watch, false) }
            let watch = ConnectionWatch(connection)
            watches[key] = watch
            return (watch, true)
        }
        if isNew {
            // A pooled connection closing (the server went away, or the pool let an idle one
            // go) is worth a look at the hosts: the pool may be on its way to backing off.
            connection.closeFuture.whenComplete { _ in
                _ = self.watches.withLock { $0.removeValue(forKey: key) }
                if !self.stopping.load(ordering: .acquiring) { self.trouble.raise() }
            }
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

    /// Runs one statement and collects its rows: for reads (see `write(_:)`).
    public func query(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await withConnection { connection in
            try await connection.query(query, logger: self.logger).collect()
        }
    }

    /// Runs one statement that changes something, in its own transaction, and returns its
    /// rows once that transaction has committed (`PostgresConnection.awaitCommit`).
    public func write(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await withConnection { connection in
            let rows = try await connection.query(query, logger: self.logger).collect()
            try await connection.awaitCommit(logger: self.logger)
            return rows
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
                // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections, and
                // read_only_sql_transaction: the host is a standby now (or was demoted).
                return ["57P01", "57P02", "57P03", "53300", "25006"].contains(error.sqlState ?? "")
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

/// A pooled connection that was already closed when it was handed out.
private struct StaleConnection: Error {}

extension PostgresConnection {
    /// Returns once the statement this connection ran last has committed, or throws if its
    /// commit failed. Outside `BEGIN … COMMIT` a statement is its own transaction, which the
    /// server commits (flushes to disk, waits for a synchronous standby) at the Sync after
    /// the statement's CommandComplete; PostgresNIO ends the rows at CommandComplete. An answer
    /// given then may stand for a commit that never happens: the server is killed, a
    /// synchronous standby never confirms, a deferred constraint fails. The next statement on
    /// a connection runs only after that Sync's ReadyForQuery, and fails if the commit did
    /// (PostgresNIO closes a connection that reports an error after CommandComplete). An
    /// explicit `COMMIT` needs none of this: its CommandComplete follows the commit.
    public func awaitCommit(logger: Logger) async throws {
        _ = try await query("SELECT 1", logger: logger).collect()
    }

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
