import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Shared

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

    /// Request headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host",
    ]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let route = routes.route(for: request.uri.path), let upstream = upstreams[route.upstream] else {
            return try await next(request, context)
        }
        guard upstreams.isHealthy(upstream.name) else { throw Problem.upstreamUnavailable(upstream.name) }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maximumBodyBytes {
            throw Problem.bodyTooLarge(limit: maximumBodyBytes)
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maximumBodyBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw Problem.bodyTooLarge(limit: maximumBodyBytes)
        }
        let outbound = makeUpstreamRequest(request, body: body, upstream: upstream, context: context)
        let response: HTTPClientResponse
        do {
            response = try await client.execute(outbound, timeout: .milliseconds(timeout.milliseconds), logger: context.logger)
        } catch {
            throw failure(error, upstream: upstream.name, logger: context.logger)
        }
        upstreams.mark(upstream.name, healthy: true, logger: context.logger)
        var headers = HTTPFields()
        for (name, value) in response.headers where !Self.hopByHop.contains(name.lowercased()) {
            if let fieldName = HTTPField.Name(name) { headers.append(HTTPField(name: fieldName, value: value)) }
        }
        let status = HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase)
        return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: response.body))
    }

    private func makeUpstreamRequest(_ request: Request, body: ByteBuffer, upstream: Upstreams.Upstream, context: Context)
        -> HTTPClientRequest
    {
        var outbound = HTTPClientRequest(url: upstream.baseURL + request.uri.description)
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
        if let demoKey, !hasAuthorization, upstream.name == "bookings" {
            outbound.headers.add(name: "Authorization", value: "Bearer \(demoKey)")
        }
        if body.readableBytes > 0 || [.post, .put, .patch].contains(request.method) {
            outbound.body = .bytes(body)
        }
        return outbound
    }

    /// What the client is told when the upstream call fails: 503 when it cannot be reached
    /// (and it is marked down, so the next calls get their answer at once), 504 when it
    /// is too slow to answer, 502 when it answered badly.
    private func failure(_ error: any Error, upstream: String, logger: Logger) -> any Error {
        if error is CancellationError { return error }
        if let error = error as? HTTPClientError, error == .deadlineExceeded {
            logger.warning("upstream timed out", metadata: ["upstream": .string(upstream)])
            return Problem.upstreamTimeout(upstream, after: timeout)
        }
        if Self.isUnreachable(error) {
            upstreams.mark(upstream, healthy: false, logger: logger)
            return Problem.upstreamUnavailable(upstream)
        }
        logger.warning("upstream call failed", metadata: ["upstream": .string(upstream), "error": .string(String(reflecting: error))])
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
