import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Shared
import Synchronization

/// A real Server-Sent Events client for tests: opens a stream (HTTP/1.1, or HTTP/2 over
/// TLS when the URL is https), parses events as they arrive, and closes on demand.
public final class EventStreamClient: Sendable {
    /// Streams need no read timeout; TLS trusts the tests' self-signed certificate.
    public static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        configuration.tlsConfiguration = tls
        configuration.httpVersion = .automatic
        configuration.timeout = .init(connect: .seconds(5), read: nil)
        configuration.connectionPool = .init(idleTimeout: .seconds(1), concurrentHTTP1ConnectionsPerHostSoftLimit: 1000)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public let status: Int
    public let headers: HTTPHeaders
    /// HTTP/2 or HTTP/1.1, as negotiated.
    public let version: HTTPVersion
    /// The body of a refusal (status not 200).
    public let refusal: Data
    private let received = Mutex<[ServerSentEventParser.Event]>([])
    private let task: Mutex<Task<Void, Never>?>
    private let ended = Mutex(false)
    private let commentCount = Mutex(0)

    public var refusalJSON: [String: any Sendable] {
        ((try? JSONSerialization.jsonObject(with: refusal)) as? [String: any Sendable]) ?? [:]
    }

    /// Whether the server ended the stream.
    public var hasEnded: Bool { ended.withLock { $0 } }
    /// Comment lines received (the preamble, pings).
    public var comments: Int { commentCount.withLock { $0 } }

    private init(status: Int, headers: HTTPHeaders, version: HTTPVersion, refusal: Data) {
        self.status = status
        self.headers = headers
        self.version = version
        self.refusal = refusal
        self.task = Mutex(nil)
    }

    /// A GET of `url` as an EventSource sends it: `Accept: text/event-stream` and, when it
    /// resumes, `Last-Event-ID`.
    public static func request(_ url: String, lastEventID: Int64? = nil, headers: [(String, String)] = []) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "text/event-stream")
        if let lastEventID { request.headers.add(name: "Last-Event-ID", value: String(lastEventID)) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        return request
    }

    /// Parses a stream's body as it arrives, handing the events of each chunk to `received`
    /// with the count of comment lines so far, until the stream ends.
    public static func read(
        _ body: HTTPClientResponse.Body, _ received: ([ServerSentEventParser.Event], _ comments: Int) -> Void
    ) async throws {
        var parser = ServerSentEventParser()
        for try await buffer in body {
            received(parser.feed(buffer.readableBytesView), parser.comments)
        }
    }

    /// Opens `url`, returns once the response head has arrived, and keeps what it sends. `presence` events (no id, every presence interval
    /// while a topic's count changes) are kept only with `includePresence`: tests of other
    /// events count those exactly.
    public static func open(_ url: String, headers: [(String, String)] = [], includePresence: Bool = false) async throws
        -> EventStreamClient
    {
        let request = request(url, headers: headers)
        let (heads, headContinuation) = AsyncStream.makeStream(of: Result<EventStreamClient, any Error>.self)
        let streamTask = Task {
            do {
                let response = try await client.execute(request, timeout: .hours(1))
                if response.status != .ok {
                    let body = try await response.body.collect(upTo: 1 << 20)
                    headContinuation.yield(
                        .success(
                            EventStreamClient(
                                status: Int(response.status.code), headers: response.headers, version: response.version,
                                refusal: Data(body.readableBytesView))))
                    headContinuation.finish()
                    return
                }
                let stream = EventStreamClient(
                    status: 200, headers: response.headers, version: response.version, refusal: Data())
                headContinuation.yield(.success(stream))
                headContinuation.finish()
                try await read(response.body) { parsed, comments in
                    let kept = includePresence ? parsed : parsed.filter { $0.event != "presence" }
                    stream.received.withLock { $0.append(contentsOf: kept) }
                    stream.commentCount.withLock { $0 = comments }
                }
                stream.ended.withLock { $0 = true }
            } catch {
                headContinuation.yield(.failure(error))
            }
            headContinuation.finish()
        }
        var headIterator = heads.makeAsyncIterator()
        guard let head = await headIterator.next() else { throw CancellationError() }
        let stream = try head.get()
        stream.task.withLock { $0 = streamTask }
        return stream
    }

    /// The next event, or nil if the stream ends or `seconds` pass first.
    public func next(within seconds: Double = 5) async -> ServerSentEventParser.Event? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while true {
            let event = received.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            if let event { return event }
            if hasEnded || ContinuousClock.now >= deadline || Task.isCancelled { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Events until `count` have arrived or `seconds` pass.
    public func collect(_ count: Int, within seconds: Double = 10) async -> [ServerSentEventParser.Event] {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var collected: [ServerSentEventParser.Event] = []
        while collected.count < count {
            let left = deadline - ContinuousClock.now
            guard left > .zero, let event = await next(within: Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18)
            else { break }
            collected.append(event)
        }
        return collected
    }

    public func close() {
        task.withLock { $0?.cancel() }
    }
}
