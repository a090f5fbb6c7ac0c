import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
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
        let hub = Hub(maximumSubscribers: configuration.maximumSubscribers, windowSize: configuration.windowSize)
        let wake = WakeSignal()
        let listener = NotificationListener(channel: "vacancy_events", url: configuration.common.database.url, signal: wake, logger: logger)
        let feed = EventFeed(database: host.database, hub: hub, wake: wake, pollInterval: configuration.pollInterval, logger: logger)
        let keeper = StreamKeeper(
            hub: hub, pingInterval: configuration.pingInterval, metricsInterval: configuration.metricsInterval, logger: logger)
        let router = host.makeRouter()
        FanoutStream(
            database: host.database, hub: hub, signer: TokenSigner(secret: configuration.tokenSecret), settings: configuration.stream
        )
        .register(on: router)
        var services: [any Service] = [listener, feed, keeper]
        if let tls = configuration.tls {
            let certificates = try NIOSSLCertificate.fromPEMFile(tls.certificatePath).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: tls.keyPath, format: .pem)
            let tlsConfiguration = TLSConfiguration.makeServerConfiguration(certificateChain: certificates, privateKey: .privateKey(key))
            let secure = Application(
                router: router,
                server: try .http2Upgrade(tlsConfiguration: tlsConfiguration),
                configuration: .init(address: .hostname(configuration.common.host, port: tls.port), serverName: "vacancy-fanout"),
                onServerRunning: onTLSServerRunning,
                logger: logger
            )
            services.append(secure)
        }
        let readiness = [
            ReadinessCheck(name: "listener") { listener.status.isUp },
            ReadinessCheck(name: "event_log") { hub.head != nil },
        ]
        return host.makeApplication(router: router, readiness: readiness, services: services, onServerRunning: onServerRunning)
    }
}
