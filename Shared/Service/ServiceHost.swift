import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Assembles a Vacancy service: the common middleware, health routes, the database pool,
/// migrations before the server starts, and the service's own long-running parts.
public struct ServiceHost: Sendable {
    public let configuration: CommonConfiguration
    public let logger: Logger
    public let database: Database
    /// This app's own counters, gauges and timers, served at `/metrics`.
    public let metrics = AppMetrics()

    public init(configuration: CommonConfiguration, logger: Logger) {
        // The global factory first: what Hummingbird records while the app is assembled and
        // run must report to Prometheus, not to the no-op default.
        _ = Observability.registry
        self.configuration = configuration
        self.logger = logger
        self.database = Database(configuration: configuration.database, logger: logger, metrics: metrics)
    }

    /// A router with request ids, metrics and problem+json errors already in place.
    public func makeRouter() -> Router<VacancyRequestContext> {
        Self.baseRouter { _ in }
    }

    /// The same, with `accessLog` right after the request ids, so it sees every answer, problems included.
    public static func makeRouter(accessLog: some RouterMiddleware<VacancyRequestContext>) -> Router<VacancyRequestContext> {
        baseRouter { $0.add(middleware: accessLog) }
    }

    /// The middleware every Vacancy router starts with: request ids, `afterRequestIDs`, metrics, problem+json errors.
    private static func baseRouter(_ afterRequestIDs: (Router<VacancyRequestContext>) -> Void) -> Router<VacancyRequestContext> {
        let router = Router(context: VacancyRequestContext.self)
        router.add(middleware: RequestIDMiddleware())
        afterRequestIDs(router)
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: ProblemMiddleware())
        return router
    }

    /// The application: `router` served over HTTP/1.1 by default, `services` run beside it.
    /// `servingRouter` adds services that serve the finished router too (a second port): it
    /// is called once the health routes are on it, and its services run after `services`.
    public func makeApplication(
        router: Router<VacancyRequestContext>,
        readiness: [ReadinessCheck] = [],
        services: [any Service] = [],
        server: HTTPServerBuilder = .http1(),
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in },
        servingRouter: (Router<VacancyRequestContext>) -> [any Service] = { _ in [] }
    ) -> some ApplicationProtocol {
        router.addHealthRoutes(service: configuration.serviceName, checks: [.database(database)] + readiness, metrics: metrics)
        // Last, once every route is on the router (and before a second server is made from it):
        // it only wraps the answer for requests no route took.
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
        // The service's own parts start once the schema is migrated; the pool runs from the start (migrating needs it).
        let migrated = StartGate()
        let services = (services + servingRouter(router)).map {
            GatedService(inner: TracedService($0, logger: self.logger), gate: migrated)
        }
        var app = Application(
            router: router,
            server: server,
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "vacancy-\(configuration.serviceName)"),
            services: [TracedService(database, logger: self.logger)] + services,
            onServerRunning: onServerRunning,
            logger: logger
        )
        let migrator = Migrator(database: database, logger: logger)
        let logger = self.logger
        app.beforeServerStarts {
            // A database that cannot be reached is retried until it can, or until the service
            // is asked to stop (SIGTERM): then the wait ends and the service exits.
            try await cancelWhenGracefulShutdown {
                try await Self.retrying("migrations", logger: logger) { try await migrator.migrate() }
            }
            migrated.open()
        }
        return app
    }

    /// Runs `body` until it succeeds, waiting longer between attempts (database not up yet).
    public static func retrying(_ what: String, logger: Logger, _ body: @Sendable () async throws -> Void) async throws {
        var delay = Duration.milliseconds(200)
        while true {
            do {
                try await body()
                return
            } catch {
                logger.warning("\(what) failed, retrying", metadata: ["error": .string(String(reflecting: error)), "retry_in": "\(delay)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}

extension ServiceHost {
    /// The `main` of every service: read the configuration (a bad value stops start-up with a
    /// clear message and exit status 2), bootstrap logging, print the configuration, run.
    public static func main<Configuration: Sendable, Settings: LoggingSettings, App: ApplicationProtocol>(
        serviceName: String,
        readConfiguration: @Sendable (inout ConfigReader) throws -> Configuration,
        common: @Sendable (Configuration) -> Settings,
        makeApplication: @Sendable (Configuration, Logger) -> App
    ) async throws {
        var reader = ConfigReader()
        let configuration: Configuration
        do {
            configuration = try readConfiguration(&reader)
        } catch {
            FileHandle.standardError.write(Data("vacancy-\(serviceName): \(error)\n".utf8))
            exit(2)
        }
        let settings = common(configuration)
        // Before any task is made: the executor can only be taken over while nothing runs on it.
        if settings.eventLoopExecutor {
            _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        let logger = Observability.bootstrapLogging(format: settings.logFormat, level: settings.logLevel, label: "vacancy.\(serviceName)")
        reader.log(to: logger)
        do {
            try await makeApplication(configuration, logger).runService()
        } catch is CancellationError {
            // Asked to stop (SIGTERM) before it was ready, while it waited for its database.
            logger.notice("stopped before start-up finished")
        }
    }
}

/// A service that logs when it starts and when its `run` returns (debug), so a shutdown that
/// never ends names the part still running.
struct TracedService: Service, CustomStringConvertible {
    let inner: any Service
    let logger: Logger

    init(_ inner: any Service, logger: Logger) {
        self.inner = inner
        self.logger = logger
    }

    var description: String { String(describing: type(of: inner)) }

    func run() async throws {
        logger.debug("service running", metadata: ["service": "\(self)"])
        defer { logger.debug("service stopped", metadata: ["service": "\(self)"]) }
        try await inner.run()
    }
}
