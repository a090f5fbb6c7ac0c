import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Shared
import Synchronization
import TestSupport

@testable import Router

/// Runs a router configured from `environment` (as the process would read it, with an
/// ephemeral port) for the length of `body`; `body` gets the plain and, with TLS, the
/// https base URL.
func withRouter<T: Sendable>(
    environment: [String: String],
    tls: Bool = false,
    _ body: @Sendable (_ baseURL: String, _ tlsURL: String?) async throws -> T
) async throws -> T {
    var environment = environment
    environment["VACANCY_ROUTER_PORT"] = "0"
    environment["VACANCY_UPSTREAM_HEALTH_MS"] = environment["VACANCY_UPSTREAM_HEALTH_MS"] ?? "200"
    var tlsURL: String?
    if tls {
        let (certificate, key) = try await TestCertificate.paths()
        let port = try freePort()
        environment["VACANCY_TLS_CERT"] = certificate
        environment["VACANCY_TLS_KEY"] = key
        environment["VACANCY_ROUTER_TLS_PORT"] = String(port)
        tlsURL = "https://127.0.0.1:\(port)"
    }
    var reader = ConfigReader(environment: environment)
    let configuration = try RouterConfiguration(reader: &reader)
    let secureURL = tlsURL
    return try await withRunningApp({ onRunning in
        try! RouterApp.make(configuration: configuration, logger: TestEnvironment.logger, onServerRunning: onRunning)
    }) { baseURL in
        try await body(baseURL, secureURL)
    }
}

/// A stand-in upstream for the router's own behaviour: an SSE stream the test writes to,
/// an endpoint that echoes what it was sent, one that answers slowly.
final class FakeUpstream: Sendable {
    private let streams = Mutex<[Int: AsyncStream<String>.Continuation]>([:])
    private let nextID = Atomic<Int>(0)
    private let calls = Atomic<Int>(0)

    /// Streams open right now (one ends when a write to it fails or it is finished).
    var openStreams: Int { streams.withLock { $0.count } }
    /// Calls to the echo endpoint.
    var echoCalls: Int { calls.load(ordering: .relaxed) }

    /// Writes `text` to every open stream.
    func push(_ text: String) {
        streams.withLock { for continuation in $0.values { continuation.yield(text) } }
    }

    func makeApp(port: Int = 0, onRunning: @escaping @Sendable (any Channel) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.get("/events") { _, _ -> Response in
            let (texts, continuation) = AsyncStream.makeStream(of: String.self)
            let id = self.nextID.wrappingAdd(1, ordering: .relaxed).newValue
            self.streams.withLock { $0[id] = continuation }
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    defer { _ = self.streams.withLock { $0.removeValue(forKey: id) } }
                    try await writer.write(ByteBuffer(string: "retry: 1000\n: open\n\n"))
                    for await text in texts { try await writer.write(ByteBuffer(string: text)) }
                    try await writer.finish(nil)
                })
        }
        router.on("/api/v1/bookings", method: .post) { request, context -> Response in
            self.calls.wrappingAdd(1, ordering: .relaxed)
            let body = try await request.body.collect(upTo: 1 << 24)
            let echo: [String: String] = [
                "authorization": request.headers[.authorization] ?? "",
                "request_id": request.headers[HTTPField.Name("X-Request-Id")!] ?? "",
                "forwarded_for": request.headers[HTTPField.Name("X-Forwarded-For")!] ?? "",
                "forwarded_proto": request.headers[HTTPField.Name("X-Forwarded-Proto")!] ?? "",
                "body_bytes": String(body.readableBytes),
            ]
            let data = try JSONEncoder().encode(echo)
            return Response(status: .created, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("/api/v1/availability/slow") { _, _ -> String in
            try await Task.sleep(for: .seconds(3))
            return "late"
        }
        router.get("/api/v1/calendar") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "application/json", .eTag: "\"v1\""], body: .init(byteBuffer: ByteBuffer(string: "{}"))
            )
        }
        router.get("/healthz") { _, _ in "ok" }
        return Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), onServerRunning: onRunning,
            logger: Logger(label: "fake-upstream", factory: { _ in SwiftLogNoOpLogHandler() }))
    }
}

/// Runs `upstream` for the length of `body` (on `port`, or an ephemeral one).
func withFakeUpstream<T: Sendable>(
    _ upstream: FakeUpstream, port: Int = 0, _ body: @Sendable (_ baseURL: String) async throws -> T
) async throws -> T {
    try await withRunningApp({ onRunning in upstream.makeApp(port: port, onRunning: onRunning) }, body)
}

/// A server that answers its health check but closes the connection on any other request:
/// an upstream that is up and answers badly.
func withHangingUpUpstream<T: Sendable>(_ body: @Sendable (_ baseURL: String) async throws -> T) async throws -> T {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(HangUp()) }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    defer { channel.close(promise: Optional<EventLoopPromise<Void>>.none) }
    return try await body("http://127.0.0.1:\(channel.localAddress?.port ?? 0)")
}

private final class HangUp: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = String(buffer: unwrapInboundIn(data))
        if request.hasPrefix("GET /healthz ") {
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer)), promise: nil)
        } else {
            context.close(promise: nil)
        }
    }
}
