import Logging

/// How a service logs: what `ServiceHost.main` needs before anything else runs.
public protocol LoggingSettings: Sendable {
    var logLevel: Logger.Level { get }
    var logFormat: LogFormat { get }
    /// Whether Swift concurrency runs its tasks on the event loops (see `readEventLoopExecutor`).
    var eventLoopExecutor: Bool { get }
}

/// Settings every Vacancy service reads: where to listen, which database, how to log.
public struct CommonConfiguration: Sendable, LoggingSettings {
    public static let defaultHost = "127.0.0.1"
    public static let defaultLogLevel = Logger.Level.info

    public var serviceName: String
    public var host: String
    public var port: Int
    public var database: DatabaseConfiguration
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    /// Set by the services that read `VACANCY_EVENT_LOOP_EXECUTOR`; off for the others.
    public var eventLoopExecutor = false

    public init(
        serviceName: String, host: String = defaultHost, port: Int = 0, database: DatabaseConfiguration,
        logLevel: Logger.Level = defaultLogLevel, logFormat: LogFormat = .logfmt
    ) {
        self.serviceName = serviceName
        self.host = host
        self.port = port
        self.database = database
        self.logLevel = logLevel
        self.logFormat = logFormat
    }

    /// Reads the common settings; `portVariable` and `defaultPort` are the service's own.
    public init(serviceName: String, portVariable: String, defaultPort: Int, reader: inout ConfigReader) throws {
        self.serviceName = serviceName
        self.host = reader.string("VACANCY_HOST", default: Self.defaultHost)
        self.port = try reader.int(portVariable, default: defaultPort, in: 0...65535)
        self.database = try DatabaseConfiguration(reader: &reader)
        self.database.url.applicationName = "vacancy-\(serviceName)"
        (self.logLevel, self.logFormat) = try Self.readLogging(&reader)
    }

    /// `VACANCY_EVENT_LOOP_EXECUTOR`: run Swift concurrency's tasks on the event loops, so an
    /// async function that awaits a query or a request resumes on the loop that answered it
    /// instead of hopping to Swift's own pool and back: two thread switches fewer per round
    /// trip (a booking makes some ten). Read by the services whose requests are async code
    /// with many round trips (bookings, the calculator, the router); the fan-out's hot path
    /// already runs on its event loops, and its few tasks cost more there than they save.
    public static func readEventLoopExecutor(_ reader: inout ConfigReader) throws -> Bool {
        try reader.bool("VACANCY_EVENT_LOOP_EXECUTOR", default: true)
    }

    /// `VACANCY_LOG_LEVEL` and `VACANCY_LOG_FORMAT`, which every service reads (the router too).
    public static func readLogging(_ reader: inout ConfigReader) throws -> (Logger.Level, LogFormat) {
        let level = try reader.logLevel("VACANCY_LOG_LEVEL", default: defaultLogLevel)
        let format = reader.string("VACANCY_LOG_FORMAT", default: LogFormat.logfmt.rawValue)
        guard let logFormat = LogFormat(rawValue: format) else {
            throw ConfigReader.InvalidValue(name: "VACANCY_LOG_FORMAT", value: format, expected: "logfmt or json")
        }
        return (level, logFormat)
    }
}

/// How a service connects to PostgreSQL.
public struct DatabaseConfiguration: Sendable {
    public static let defaultURL = "postgres://postgres@127.0.0.1:54329/vacancy"
    public static let defaultPoolSize = 10
    public static let defaultAcquireTimeoutMilliseconds = 3000
    public static let defaultStatementTimeoutMilliseconds = 10_000

    public var url: DatabaseURL
    public var maximumConnections: Int
    /// How long a request waits for a connection before it is answered 503.
    public var acquireTimeout: Duration
    /// The server-side `statement_timeout` for every pooled connection.
    public var statementTimeout: Duration

    public init(
        url: DatabaseURL, maximumConnections: Int = defaultPoolSize,
        acquireTimeout: Duration = .milliseconds(defaultAcquireTimeoutMilliseconds),
        statementTimeout: Duration = .milliseconds(defaultStatementTimeoutMilliseconds)
    ) {
        self.url = url
        self.maximumConnections = maximumConnections
        self.acquireTimeout = acquireTimeout
        self.statementTimeout = statementTimeout
    }

    public init(reader: inout ConfigReader) throws {
        let url = try reader.databaseURL("VACANCY_DATABASE_URL", default: Self.defaultURL)
        self.init(
            url: url,
            maximumConnections: try reader.int("VACANCY_DB_POOL_SIZE", default: Self.defaultPoolSize, in: 1...500),
            acquireTimeout: try reader.milliseconds(
                "VACANCY_DB_ACQUIRE_TIMEOUT_MS", default: Self.defaultAcquireTimeoutMilliseconds, in: 50...60000),
            statementTimeout: try reader.milliseconds(
                "VACANCY_DB_STATEMENT_TIMEOUT_MS", default: Self.defaultStatementTimeoutMilliseconds, in: 100...600_000)
        )
    }
}
