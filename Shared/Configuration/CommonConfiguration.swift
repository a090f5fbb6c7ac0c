import Logging

/// How a service logs: what `ServiceHost.main` needs before anything else runs.
public protocol LoggingSettings: Sendable {
    var logLevel: Logger.Level { get }
    var logFormat: LogFormat { get }
}

/// Settings every Vacancy service reads: where to listen, which database, how to log.
public struct CommonConfiguration: Sendable, LoggingSettings {
    public var serviceName: String
    public var host: String
    public var port: Int
    public var database: DatabaseConfiguration
    public var logLevel: Logger.Level
    public var logFormat: LogFormat

    public init(
        serviceName: String, host: String = "127.0.0.1", port: Int = 0, database: DatabaseConfiguration, logLevel: Logger.Level = .info,
        logFormat: LogFormat = .logfmt
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
        self.host = reader.string("VACANCY_HOST", default: "127.0.0.1")
        self.port = try reader.int(portVariable, default: defaultPort, in: 0...65535)
        self.database = try DatabaseConfiguration(reader: &reader)
        self.logLevel = try reader.logLevel("VACANCY_LOG_LEVEL", default: .info)
        let format = reader.string("VACANCY_LOG_FORMAT", default: LogFormat.logfmt.rawValue)
        guard let logFormat = LogFormat(rawValue: format) else {
            throw ConfigReader.InvalidValue(name: "VACANCY_LOG_FORMAT", value: format, expected: "logfmt or json")
        }
        self.logFormat = logFormat
    }
}

/// How a service connects to PostgreSQL.
public struct DatabaseConfiguration: Sendable {
    public static let defaultURL = "postgres://postgres@127.0.0.1:54329/vacancy"

    public var url: DatabaseURL
    public var maximumConnections: Int
    /// How long a request waits for a connection before it is answered 503.
    public var acquireTimeout: Duration
    /// The server-side `statement_timeout` for every pooled connection.
    public var statementTimeout: Duration

    public init(
        url: DatabaseURL, maximumConnections: Int = 10, acquireTimeout: Duration = .seconds(3), statementTimeout: Duration = .seconds(10)
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
            maximumConnections: try reader.int("VACANCY_DB_POOL_SIZE", default: 10, in: 1...500),
            acquireTimeout: try reader.milliseconds("VACANCY_DB_ACQUIRE_TIMEOUT_MS", default: 3000, in: 50...60000),
            statementTimeout: try reader.milliseconds("VACANCY_DB_STATEMENT_TIMEOUT_MS", default: 10000, in: 100...600_000)
        )
    }
}
