import Logging

extension Logger {
    /// A logger for PostgresNIO calls whose failures the caller reports itself.
    public static let vacancyQuiet: Logger = {
        var logger = Logger(label: "vacancy.sql")
        logger.logLevel = .critical
        return logger
    }()
}
