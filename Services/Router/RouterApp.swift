import AsyncHTTPClient
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Shared

/// The router assembled: request ids, access log, problem+json, CORS, rate limits, the
/// proxy to the three services, and the web page; HTTP/1.1 on one port and, with a
/// certificate, HTTP/2 or HTTP/1.1 by ALPN on the TLS port.
enum RouterApp {
    static func make(
        configuration: RouterConfiguration,
        logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in },
        onTLSServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        _ = Observability.registry
        let metrics = AppMetrics()
        let client = makeClient(configuration)
        let upstreams = Upstreams(configuration.upstreams, metrics: metrics)
        let router = ServiceHost.makeRouter(accessLog: AccessLog())
        router.add(middleware: CORSAllowList(origins: configuration.corsOrigins))
        router.add(
            middleware: RateLimitMiddleware(
                routes: configuration.routes, api: RateLimiter(limit: configuration.apiLimit),
                streams: RateLimiter(limit: configuration.streamLimit), metrics: metrics))
        router.add(
            middleware: UpstreamProxy(
                routes: configuration.routes, upstreams: upstreams, client: client, timeout: configuration.upstreamTimeout,
                maximumBodyBytes: configuration.maximumBodyBytes, demoKey: configuration.demoKey, tlsPort: configuration.tls?.port,
                metrics: metrics))
        router.add(
            middleware: FileMiddleware(
                configuration.webRoot, cacheControl: .init([(MediaType(type: .any), [.noCache])]), searchForIndexHtml: true, logger: logger)
        )
        let demo = configuration.demoKey != nil
        router.get("/config.json") { _, _ in
            try JSONResponse.make(["demo": demo], headers: [.cacheControl: "no-cache"])
        }
        // Ready while every service has an instance that answers.
        let checks = upstreams.serviceNames.map { name in ReadinessCheck(name: name) { upstreams.isHealthy(name) } }
        router.addHealthRoutes(service: "router", checks: checks, metrics: metrics)

        var services: [any Service] = [
            UpstreamHealthCheck(upstreams: upstreams, client: client, interval: configuration.healthInterval, logger: logger),
            HTTPClientShutdown(client: client),
        ]
        if let tls = configuration.tls {
            let tlsConfiguration = try tls.serverConfiguration()
            services.append(
                Application(
                    router: router,
                    server: .sendTimeout(configuration.sendTimeout) { responder in
                        try HTTP2UpgradeChannel(tlsConfiguration: tlsConfiguration, responder: responder)
                    },
                    configuration: .init(address: .hostname(configuration.host, port: tls.port), serverName: "vacancy-router"),
                    onServerRunning: onTLSServerRunning,
                    logger: logger
                ))
        }
        return Application(
            router: router,
            server: .sendTimeout(configuration.sendTimeout) { responder in HTTP1Channel(responder: responder) },
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "vacancy-router"),
            services: services,
            onServerRunning: onServerRunning,
            logger: logger
        )
    }

    static func makeClient(_ configuration: RouterConfiguration) -> HTTPClient {
        var settings = HTTPClient.Configuration()
        settings.redirectConfiguration = .disallow
        settings.decompression = .disabled
        settings.timeout = .init(connect: .milliseconds(configuration.connectTimeout.milliseconds), read: nil)
        // Every open event stream holds one upstream connection: no small cap may queue them.
        settings.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 50_000)
        // A service that is down fails the call at once (503) instead of being retried until
        // the connect timeout; the health check notices when it is back.
        settings.connectionPool.retryConnectionEstablishment = false
        settings.httpVersion = .http1Only
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: settings)
    }
}

/// Shuts the upstream client down when the router stops, which also ends the event
/// streams still running through it, so shutdown does not wait for browsers to leave.
struct HTTPClientShutdown: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try? await client.shutdown()
    }
}
