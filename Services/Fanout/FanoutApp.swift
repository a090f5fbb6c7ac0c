import FanoutCore
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Shared

/// The fan-out assembled: the log feed and its listener, the stream keeper, `/events` on
/// plain HTTP/1.1 and, with a certificate, on a TLS port that speaks HTTP/2 or HTTP/1.1.
enum FanoutApp {
    static func make(
        configuration: FanoutConfiguration,
        logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in },
        onTLSServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let host = ServiceHost(configuration: configuration.common, logger: logger)
        let hub = Hub(maximumSubscribers: configuration.maximumSubscribers, windowSize: configuration.windowSize, metrics: host.metrics)
        let wake = WakeSignal()
        let listener = NotificationListener(channel: "vacancy_events", url: configuration.common.database.url, signal: wake, logger: logger)
        let reads = LogReads(metrics: host.metrics)
        let feed = EventFeed(
            database: host.database, hub: hub, wake: wake, pollInterval: configuration.pollInterval, reads: reads, logger: logger)
        let keeper = StreamKeeper(
            hub: hub, database: host.database, pingInterval: configuration.pingInterval, metricsInterval: configuration.metricsInterval,
            logger: logger)
        let releaser = MemoryReleaser(
            hub: hub, interval: configuration.memoryTrimInterval, minimumChurn: configuration.memoryTrimChurn, metrics: host.metrics,
            logger: logger)
        let router = host.makeRouter()
        router.addOpenAPIRoute(.fanout)
        let verifier = SubscriberTokenVerifier(secret: configuration.tokenSecret)
        let streams = FanoutStream(
            database: host.database, hub: hub, verifier: verifier, settings: configuration.stream, metrics: host.metrics, reads: reads)
        let presence = Presence(hub: hub, interval: configuration.presenceInterval)
        PresenceRoutes(presence: presence).register(on: router)
        let reporter = PresenceReporter(presence: presence, database: host.database, metrics: host.metrics, logger: logger)
        var background: [any Service] = [listener, feed, keeper, releaser, reporter]
        if let url = configuration.tokenJWKSURL {
            background.append(
                JWKSRefresher(url: url, interval: configuration.tokenJWKSRefresh, verifier: verifier, metrics: host.metrics, logger: logger)
            )
        }
        streams.register(on: router)
        // Every connection (and every HTTP/2 stream) gets a handler that takes `/events` requests as streams.
        let http = HTTP1Channel.Configuration(additionalChannelHandlers: [EventStreamHandler(streams: streams)])
        var secureServer: (builder: HTTPServerBuilder, port: Int)?
        if let tls = configuration.tls {
            secureServer = (
                try .secureEvents(
                    tls: try tls.serverConfiguration(), http: http, sendTimeout: configuration.sendTimeout,
                    unsentBytes: configuration.unsentBytes), tls.port
            )
        }
        let readiness = [
            ReadinessCheck(name: "listener") { listener.status.isUp },
            ReadinessCheck(name: "event_log") { hub.head != nil },
        ]
        return host.makeApplication(
            router: router, readiness: readiness, services: background,
            server: .events(http: http, sendTimeout: configuration.sendTimeout, unsentBytes: configuration.unsentBytes),
            onServerRunning: onServerRunning
        ) { router in
            // The TLS port serves the same routes (health and metrics included) as the plain one.
            var services: [any Service] = []
            if let secureServer {
                services.append(
                    Application(
                        router: router,
                        server: secureServer.builder,
                        configuration: .init(
                            address: .hostname(configuration.common.host, port: secureServer.port), serverName: "vacancy-fanout"),
                        onServerRunning: onTLSServerRunning,
                        logger: logger
                    ))
            }
            // Last, so the first to hear of a graceful shutdown: streams end cleanly before the
            // servers wait for their connections to close.
            services.append(StreamCloser(hub: hub))
            return services
        }
    }
}

/// Ends every open stream, with a comment saying so, as soon as a graceful shutdown starts,
/// so clients reconnect to another instance while this one finishes.
struct StreamCloser: Service {
    let hub: Hub

    func run() async throws {
        try? await gracefulShutdown()
        for subscriber in hub.all() { subscriber.finish(.shutdown, final: .comment("shutting down; reconnect")) }
    }
}
