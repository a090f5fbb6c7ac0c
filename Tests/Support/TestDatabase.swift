import Foundation
import Logging
import PostgresNIO
import Shared

/// Where the test cluster is: `make test` sets `VACANCY_TEST_DATABASE_URL`.
public enum TestEnvironment {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String {
            "VACANCY_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts a throwaway PostgreSQL"
        }
    }

    public static func adminURL() throws -> DatabaseURL {
        guard let text = ProcessInfo.processInfo.environment["VACANCY_TEST_DATABASE_URL"] else { throw Missing() }
        return try DatabaseURL(parsing: text)
    }

    public static let logger: Logger = {
        var logger = Logger(label: "vacancy.test")
        logger.logLevel = ProcessInfo.processInfo.environment["VACANCY_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        return logger
    }()

    /// Where tests leave artefacts (screenshots, logs) for a failed run.
    public static var outputDirectory: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.environment["VACANCY_TEST_OUTPUT"] ?? FileManager.default.temporaryDirectory.path)
    }
}

/// A fresh database on the test cluster, migrated, with a pool for the test's own checks.
/// Each test gets its own, so tests run in parallel without seeing each other's rows.
public struct TestDatabase: Sendable {
    public let url: DatabaseURL
    public let database: Database

    /// Test databases in use at once, `VACANCY_TEST_DATABASES` (default 40). A test with its
    /// services holds up to about ten connections; `make test` gives the cluster 800.
    public static let gate = ConcurrencyGate(
        limit: ProcessInfo.processInfo.environment["VACANCY_TEST_DATABASES"].flatMap { Int($0) }.map { max(1, $0) } ?? 40)

    /// Creates a database, runs `body` with it, and drops it afterwards. Waits first while
    /// `gate` is full.
    public static func with<T: Sendable>(
        migrate: Bool = true,
        _ body: @Sendable (TestDatabase) async throws -> T
    ) async throws -> T {
        try await gate.run { try await withNew(migrate: migrate, body) }
    }

    private static func withNew<T: Sendable>(
        migrate: Bool,
        _ body: @Sendable (TestDatabase) async throws -> T
    ) async throws -> T {
        let admin = try TestEnvironment.adminURL()
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await adminExecute("CREATE DATABASE \(name)", admin: admin)
        let result = await Result(catching: { try await withExisting(url: admin.with(database: name), migrate: migrate, body) })
        try? await adminExecute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)", admin: admin)
        return try result.get()
    }

    /// Runs `body` with a pool on an existing database (one of a private cluster, say).
    public static func withExisting<T: Sendable>(
        url: DatabaseURL,
        migrate: Bool = true,
        _ body: @Sendable (TestDatabase) async throws -> T
    ) async throws -> T {
        let database = Database(configuration: .init(url: url, maximumConnections: 4), logger: TestEnvironment.logger)
        let testDatabase = TestDatabase(url: url, database: database)
        let result: Result<T, any Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await database.run() }
            defer { group.cancelAll() }
            do {
                if migrate { try await Migrator(database: database, logger: TestEnvironment.logger).migrate() }
                return .success(try await body(testDatabase))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Runs one statement as the cluster's superuser on its `postgres` database.
    public static func adminExecute(_ sql: String, admin: DatabaseURL) async throws {
        let connection = try await PostgresConnection.connect(
            configuration: .init(
                host: admin.host, port: admin.port, username: admin.username, password: admin.password, database: "postgres", tls: .disable),
            id: 1,
            logger: TestEnvironment.logger
        )
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: TestEnvironment.logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// The first column of the first row of `query`, as an Int (`PostgresConnection.scalar`).
    public func scalar(_ query: PostgresQuery) async throws -> Int {
        try await database.withConnection { connection in try await connection.scalar(query) }
    }

    /// Row counts of every Vacancy table, to show a rejected request changed nothing.
    public func rowCounts() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for table in ["sessions", "bookings", "changes", "events", "idempotency_keys"] {
            counts[table] = try await scalar(PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM \(table)"))
        }
        return counts
    }

    /// A fingerprint of every row's content, so even an in-place change shows.
    public func contentDigest() async throws -> String {
        let rows = try await database.query(
            """
            SELECT md5(coalesce((SELECT string_agg(t::text, ',' ORDER BY t::text) FROM sessions t), '')
                    || coalesce((SELECT string_agg(t::text, ',' ORDER BY t::text) FROM bookings t), '')
                    || coalesce((SELECT string_agg(t::text, ',' ORDER BY t::text) FROM changes t), '')
                    || coalesce((SELECT string_agg(t::text, ',' ORDER BY t::text) FROM idempotency_keys t), ''))
            """
        )
        return try rows[0].decode(String.self)
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
