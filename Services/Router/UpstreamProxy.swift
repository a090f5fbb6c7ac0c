import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Shared
import Synchronization

/// Forwards a routed request to its upstream and streams the answer back as it arrives:
/// an SSE event crosses the router the moment the upstream writes it, and a client that
/// goes away ends the upstream call (dropping the response body cancels it).
struct UpstreamProxy: RouterMiddleware {
    typealias Context = VacancyRequestContext

    let routes: RouteTable
    let upstreams: Upstreams
    let client: HTTPClient
    /// Longest wait for the upstream's response head.
    let timeout: Duration
    let maximumBodyBytes: Int
    let demoKey: String?
    /// The router's HTTPS port, to tell upstreams which scheme the client used.
    let tlsPort: Int?
    let metrics: AppMetrics

    /// Request headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host",
    ]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let route = routes.route(for: request.uri.path), upstreams.knows(route.upstream) else {
            return try await next(request, context)
        }
        let service = route.upstream
        guard upstreams.isHealthy(service) else { throw Problem.upstreamUnavailable(service) }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maximumBodyBytes {
            throw Problem.bodyTooLarge(limit: maximumBodyBytes)
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maximumBodyBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw Problem.bodyTooLarge(limit: maximumBodyBytes)
        }
        let isStream = service == "fanout" && request.uri.path == "/events"
        // What may be sent twice: a read, or a POST its Idempotency-Key makes safe to repeat.
        let retryable = [.get, .head].contains(request.method) || (request.method == .post && request.headers[.idempotencyKey] != nil)
        var tried: Set<Upstreams.Instance> = []
        while true {
            let chosen = isStream ? upstreams.claimStream(service, excluding: tried) : upstreams.next(service, excluding: tried)
            guard let instance = chosen else { throw Problem.upstreamUnavailable(service) }
            tried.insert(instance)
            AnsweringInstance.current?.set(instance.baseURL)
            let outbound = makeUpstreamRequest(request, body: body, instance: instance, context: context)
            let response: HTTPClientResponse
            do {
                response = try await client.execute(outbound, timeout: .milliseconds(timeout.milliseconds), logger: context.logger)
            } catch {
                if isStream { upstreams.streamClosed(instance) }
                count(instance, "failed")
                // Not connected, so nothing was sent: an idempotent call goes once more, elsewhere.
                if Self.isUnreachable(error) {
                    upstreams.mark(instance, healthy: false, logger: context.logger)
                    if retryable && tried.count < 2 {
                        metrics.counter("vacancy_router_retries_total", [("upstream", service)]).increment()
                        continue
                    }
                }
                throw failure(error, instance: instance, logger: context.logger)
            }
            count(instance, "answered")
            upstreams.mark(instance, healthy: true, logger: context.logger)
            var headers = HTTPFields()
            for (name, value) in response.headers where !Self.hopByHop.contains(name.lowercased()) {
                if let fieldName = HTTPField.Name(name) { headers.append(HTTPField(name: fieldName, value: value)) }
            }
            let status = HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase)
            guard isStream, response.status == .ok else {
                if isStream { upstreams.streamClosed(instance) }
                return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: response.body))
            }
            let release = StreamRelease { [upstreams] in upstreams.streamClosed(instance) }
            return Response(
                status: status, headers: headers, body: ResponseBody(asyncSequence: CountedBody(base: response.body, release: release)))
        }
    }

    private func count(_ instance: Upstreams.Instance, _ outcome: String) {
        metrics.counter(
            "vacancy_router_upstream_calls_total", [("instance", instance.baseURL), ("outcome", outcome), ("upstream", instance.service)]
        ).increment()
    }

    private func makeUpstreamRequest(_ request: Request, body: ByteBuffer, instance: Upstreams.Instance, context: Context)
        -> HTTPClientRequest
    {
        var outbound = HTTPClientRequest(url: instance.baseURL + request.uri.description)
        outbound.method = HTTPMethod(rawValue: request.method.rawValue)
        var hasAuthorization = false
        for field in request.headers where !Self.hopByHop.contains(field.name.canonicalName) {
            if field.name == .xForwardedFor || field.name == .requestID { continue }
            if field.name == .authorization { hasAuthorization = true }
            outbound.headers.add(name: field.name.rawName, value: field.value)
        }
        outbound.headers.replaceOrAdd(name: "X-Request-Id", value: context.requestID)
        let client = context.channel.remoteAddress?.ipAddress ?? "unknown"
        let forwardedFor = request.headers[.xForwardedFor].map { "\($0), \(client)" } ?? client
        outbound.headers.replaceOrAdd(name: "X-Forwarded-For", value: forwardedFor)
        outbound.headers.replaceOrAdd(
            name: "X-Forwarded-Proto", value: tlsPort != nil && context.channel.localAddress?.port == tlsPort ? "https" : "http")
        if let authority = request.head.authority { outbound.headers.replaceOrAdd(name: "X-Forwarded-Host", value: authority) }
        if let demoKey, !hasAuthorization, instance.service == "bookings" {
            outbound.headers.add(name: "Authorization", value: "Bearer \(demoKey)")
        }
        if body.readableBytes > 0 || [.post, .put, .patch].contains(request.method) {
            outbound.body = .bytes(body)
        }
        return outbound
    }

    /// What the client is told when the upstream call fails: 503 when it cannot be reached
    /// (it is marked down, so the next calls go elsewhere or get their answer at once), 504
    /// when it is too slow to answer, 502 when it answered badly.
    private func failure(_ error: any Error, instance: Upstreams.Instance, logger: Logger) -> any Error {
        let upstream = instance.service
        let metadata: Logger.Metadata = ["upstream": .string(upstream), "instance": .string(instance.baseURL)]
        if error is CancellationError { return error }
        if let error = error as? HTTPClientError, error == .deadlineExceeded {
            logger.warning("upstream timed out", metadata: metadata)
            return Problem.upstreamTimeout(upstream, after: timeout)
        }
        if Self.isUnreachable(error) { return Problem.upstreamUnavailable(upstream) }
        logger.warning("upstream call failed", metadata: metadata.merging(["error": .string(String(reflecting: error))]) { $1 })
        return Problem.badGateway(upstream)
    }

    static func isUnreachable(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError { return error == .connectTimeout }
        if error is NIOConnectionError { return true }
        if let error = error as? IOError { return [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ETIMEDOUT].contains(error.errnoCode) }
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        return false
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
    static let idempotencyKey = Self("Idempotency-Key")!
}

/// An upstream's response body that counts its event stream open until the body ends,
/// fails or is dropped (the client went away).
struct CountedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let base: HTTPClientResponse.Body
    let release: StreamRelease

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: HTTPClientResponse.Body.AsyncIterator
        let release: StreamRelease

        mutating func next() async throws -> ByteBuffer? {
            do {
                let chunk = try await base.next()
                if chunk == nil { release.now() }
                return chunk
            } catch {
                release.now()
                throw error
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), release: release) }
}

/// Runs its action once: when told, or when the last reference goes.
final class StreamRelease: Sendable {
    private let action: @Sendable () -> Void
    private let done = Atomic<Bool>(false)

    init(_ action: @escaping @Sendable () -> Void) {
        self.action = action
    }

    func now() {
        if !done.exchange(true, ordering: .relaxed) { action() }
    }

    deinit { now() }
}

/// Which instance answered the request in hand, for the access log (set by the proxy, read
/// by `AccessLog` around it, in the same task).
final class AnsweringInstance: Sendable {
    @TaskLocal static var current: AnsweringInstance?
    private let value = Mutex<String?>(nil)

    func set(_ baseURL: String) { value.withLock { $0 = baseURL } }
    var baseURL: String? { value.withLock { $0 } }
}

extension Problem {
    static func upstreamUnavailable(_ upstream: String) -> Problem {
        Problem(
            "upstream-unavailable",
            title: "Service unavailable",
            status: .serviceUnavailable,
            detail: "The \(upstream) service is not answering right now; retry shortly.",
            extensions: ["upstream": .string(upstream)],
            headers: [.retryAfter: "1"]
        )
    }

    static func upstreamTimeout(_ upstream: String, after timeout: Duration) -> Problem {
        Problem(
            "upstream-timeout",
            title: "Gateway timeout",
            status: .gatewayTimeout,
            detail: "The \(upstream) service did not answer within \(timeout.milliseconds) ms.",
            extensions: ["upstream": .string(upstream)]
        )
    }

    static func badGateway(_ upstream: String) -> Problem {
        Problem(
            "bad-gateway",
            title: "Bad gateway",
            status: .badGateway,
            detail: "The \(upstream) service failed to answer properly; retry, and quote the request_id if it persists.",
            extensions: ["upstream": .string(upstream)]
        )
    }

    static func bodyTooLarge(limit: Int) -> Problem {
        Problem(
            "body-too-large",
            title: "Request body too large",
            status: .contentTooLarge,
            detail: "Request bodies are limited to \(limit) bytes.",
            extensions: ["limit": .int(limit)]
        )
    }
}
