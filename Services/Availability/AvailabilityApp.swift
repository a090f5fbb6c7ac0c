import Hummingbird
import Logging
import NIOCore
import Shared

/// The availability calculator assembled: the change listener, the event writer and the read API.
enum AvailabilityApp {
    static func make(
        configuration: AvailabilityConfiguration,
        logger: Logger,
        listen: Bool = true,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let host = ServiceHost(configuration: configuration.common, logger: logger)
        let wake = WakeSignal()
        let url = configuration.common.database.url
        let listener = NotificationListener(channel: "vacancy_changes", url: url, signal: wake, logger: logger)
        let writer = EventWriter(
            url: url, wake: wake, pollInterval: configuration.pollInterval, batchSize: configuration.batchSize,
            rules: configuration.rules, clock: configuration.clock, positionInterval: configuration.positionInterval,
            metrics: host.metrics, logger: logger
        )
        let router = host.makeRouter()
        router.addOpenAPIRoute(.availability)
        AvailabilityRoutes(database: host.database, rules: configuration.rules, timeZone: configuration.timeZone).register(on: router)
        router.get("/leader") { _, _ in
            try JSONResponse.make(["leader": writer.leadership.isUp])
        }
        let readiness = listen ? [ReadinessCheck(name: "listener") { listener.status.isUp }] : []
        return host.makeApplication(
            router: router, readiness: readiness, services: listen ? [listener, writer] : [writer], onServerRunning: onServerRunning
        )
    }
}
