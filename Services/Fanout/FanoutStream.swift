import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Shared

/// `GET /events`: a Server-Sent Events stream of the log's events on the asked topics,
/// resumed exactly after `Last-Event-ID`. Every refusal (bad topic, bad id, missing or
/// insufficient token, too many subscribers) is a problem+json before any stream byte.
struct FanoutStream: Sendable {
    let database: Database
    let hub: Hub
    let signer: TokenSigner
    let settings: StreamSettings
    private let resumes = Counter(label: "vacancy_fanout_resumes_total")
    private let lag = Timer(label: "vacancy_fanout_delivery_lag_seconds", preferredDisplayUnit: .seconds)

    struct StreamSettings: Sendable {
        var retryMilliseconds = 2000
        var bufferFrames = 1000
        var bufferBytes = 1 << 20
        /// Events per history page read from the table.
        var historyPage = 1000
    }

    init(database: Database, hub: Hub, signer: TokenSigner, settings: StreamSettings) {
        self.database = database
        self.hub = hub
        self.signer = signer
        self.settings = settings
    }

    static let expiredFrame = Frame(
        id: nil, bytes: ServerSentEvent.frame(id: nil, event: "expired", data: #"{"reason":"token_expired"}"#), loggedAt: nil)

    func register(on router: Router<VacancyRequestContext>) {
        router.get("/events") { request, context in
            try await subscribe(request, context)
        }
    }

    private func subscribe(_ request: Request, _ context: VacancyRequestContext) async throws -> Response {
        let query = request.uri.formQueryParameters
        let topics = try Self.topics(query.getAll("topic").map { String($0) })
        let lastEventID = try Self.lastEventID(request)
        let token = try authorize(request, topics: topics)

        let channel = context.channel
        let transport = channel.parent?.parent == nil ? "http1" : "h2"  // an HTTP/2 stream hangs off its connection
        let registration = hub.register { id in
            Subscriber(
                id: id, topics: topics, transport: transport, expiresAt: token?.expiresAt,
                maximumFrames: settings.bufferFrames, maximumBytes: settings.bufferBytes,
                abortConnection: { Self.abort(channel) }
            )
        }
        let (subscriber, head): (Subscriber, Int64)
        switch registration {
        case .success(let registered):
            (subscriber, head) = registered
        case .failure(.full):
            throw Problem(
                "too-many-subscribers", title: "Too many subscribers", status: .serviceUnavailable,
                detail: "This instance has \(hub.maximumSubscribers) open streams; retry shortly or elsewhere.",
                headers: [.retryAfter: "5"])
        case .failure(.notReady):
            throw Problem(
                "not-ready", title: "Not ready", status: .serviceUnavailable,
                detail: "The event log has not been read yet; retry shortly.", headers: [.retryAfter: "1"])
        }

        // History (or a reset) is worked out now, after registering: anything committed
        // after `head` reaches the subscriber live, so nothing falls in between.
        let history: (frames: [Frame], after: Int64)
        do {
            history = try await self.history(after: lastEventID, head: head, topics: topics)
        } catch {
            hub.remove(subscriber)
            throw error
        }

        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        let retry = settings.retryMilliseconds
        let lag = self.lag
        let hub = self.hub
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                do {
                    try await withGracefulShutdownHandler {
                        var preamble = ServerSentEvent.retry(milliseconds: retry)
                        preamble.writeString(": vacancy stream\n\n")
                        try await writer.write(preamble)
                        var lastSent = history.after
                        try await Self.write(history.frames, to: &writer, lastSent: &lastSent, lag: nil)
                        while let frames = await subscriber.next() {
                            try await Self.write(frames, to: &writer, lastSent: &lastSent, lag: lag)
                        }
                    } onGracefulShutdown: {
                        subscriber.finish(.shutdown, final: .comment("shutting down; reconnect"))
                    }
                    hub.remove(subscriber)
                    try await writer.finish(nil)
                } catch {
                    hub.remove(subscriber)
                    subscriber.cancel()
                    throw error
                }
            }
        )
    }

    /// Writes frames, skipping events at or before `lastSent` (already delivered).
    private static func write(
        _ frames: [Frame], to writer: inout any ResponseBodyWriter, lastSent: inout Int64, lag: Timer?
    ) async throws {
        var buffers: [ByteBuffer] = []
        buffers.reserveCapacity(frames.count)
        var logged: [Date] = []
        for frame in frames {
            if let id = frame.id {
                guard id > lastSent else { continue }
                lastSent = id
            }
            buffers.append(frame.bytes)
            if let at = frame.loggedAt { logged.append(at) }
        }
        guard !buffers.isEmpty else { return }
        try await writer.write(contentsOf: buffers)
        if let lag {
            let now = Date()
            for at in logged { lag.recordNanoseconds(Int64(max(0, now.timeIntervalSince(at)) * 1e9)) }
        }
    }

    /// What a resuming subscriber missed: the events after `lastEventID` through `head` on
    /// its topics, from memory when the window reaches back far enough, else from the table;
    /// or a `reset` when the id is older than the log keeps or newer than its head. Also
    /// returns the id after which live events are new to this subscriber.
    private func history(after lastEventID: Int64?, head: Int64, topics: [String]) async throws -> ([Frame], Int64) {
        guard let lastEventID, lastEventID < head else {
            guard let lastEventID, lastEventID > head else { return ([], head) }
            // Ahead of this instance's head: ahead of the log itself, or just not read yet?
            let (_, newest) = try await EventFeed.bounds(database)
            if lastEventID > newest { return ([Self.reset("ahead_of_log", head: head)], head - 1) }
            return ([], lastEventID)  // committed, on its way live; events up to it are dropped by id
        }
        resumes.increment()
        let topicSet = Set(topics)
        if let recent = hub.recent(after: lastEventID, through: head, topics: topicSet) {
            return (recent.map(\.frame), lastEventID)
        }
        let (oldest, _) = try await EventFeed.bounds(database)
        // An empty log (oldest 0) behind a head of ours has pruned everything this subscriber missed.
        if oldest == 0 || lastEventID + 1 < oldest { return ([Self.reset("behind_retention", head: head)], head - 1) }
        var frames: [Frame] = []
        var after = lastEventID
        while true {
            let page = try await EventFeed.read(database, after: after, through: head, topics: topics, limit: settings.historyPage)
            frames.append(contentsOf: page.map(\.frame))
            guard page.count == settings.historyPage, let last = page.last else { break }
            after = last.id
        }
        return (frames, lastEventID)
    }

    /// Ends the stream of a subscriber that stopped reading. An HTTP/1.1 connection is
    /// reset (SO_LINGER 0), not closed: a FIN would wait in the kernel behind the bytes the
    /// client is not reading, keeping those buffers and leaving the client unaware; a reset
    /// frees them at once and tells the client to resume now. An HTTP/2 stream's channel is
    /// closed, which resets just that stream (RST_STREAM).
    static func abort(_ channel: any Channel) {
        guard channel.parent?.parent == nil, let socket = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }

    static func reset(_ reason: String, head: Int64) -> Frame {
        Counter(label: "vacancy_fanout_resets_total", dimensions: [("reason", reason)]).increment()
        let data = #"{"reason":"\#(reason)","snapshot":"/api/v1/calendar","last_event_id":\#(head)}"#
        return Frame(id: head, bytes: ServerSentEvent.frame(id: head, event: "reset", data: data), loggedAt: nil)
    }

    // MARK: Parsing and authorisation

    static func topics(_ values: [String]) throws -> [String] {
        guard !values.isEmpty else { throw Problem.badParameter("topic", "at least one topic is required") }
        guard values.count <= Topic.maximumPerSubscription else {
            throw Problem.badParameter("topic", "at most \(Topic.maximumPerSubscription) topics per stream")
        }
        for value in values where Topic.kind(of: value) == nil {
            throw Problem.badParameter(
                "topic",
                "'\(value.prefix(80))' is not a topic: use availability, availability.{YYYY-MM-DD}, availability.session.{id}, "
                    + "availability.course.{course_type}, availability.location.{location}, alerts, user.{customer_id} or admin")
        }
        var seen: Set<String> = []
        return values.filter { seen.insert($0).inserted }
    }

    /// `Last-Event-ID`, else `last_event_id`: a non-negative integer, or nil.
    static func lastEventID(_ request: Request) throws -> Int64? {
        if let header = request.headers[HTTPField.Name("Last-Event-ID")!] {
            guard let id = Int64(header.trimmingCharacters(in: .whitespaces)), id >= 0 else {
                throw Problem.badParameter("Last-Event-ID", "must be a non-negative integer event id")
            }
            return id
        }
        if let value = request.uri.formQueryParameters["last_event_id"] {
            guard let id = Int64(value), id >= 0 else {
                throw Problem.badParameter("last_event_id", "must be a non-negative integer event id")
            }
            return id
        }
        return nil
    }

    /// For private topics, the token from `Authorization: Bearer`, the `vacancy_token`
    /// cookie or the `token` parameter: 401 without a valid one, 403 when it does not name
    /// every private topic asked for.
    private func authorize(_ request: Request, topics: [String]) throws -> SubscriberToken? {
        let privateTopics = topics.filter { Topic.kind(of: $0).map(Topic.isPrivate) == true }
        guard !privateTopics.isEmpty else { return nil }
        guard let compact = Self.presentedToken(request) else {
            throw Self.unauthorized("Topics \(privateTopics.joined(separator: ", ")) need a subscriber token.")
        }
        let token: SubscriberToken
        do {
            token = try signer.verify(compact)
        } catch {
            throw Self.unauthorized("The subscriber token is not valid: \(error).")
        }
        let uncovered = privateTopics.filter { !token.covers($0) }
        guard uncovered.isEmpty else {
            throw Problem(
                "forbidden-topic", title: "Topic not allowed", status: .forbidden,
                detail: "The subscriber token does not cover \(uncovered.joined(separator: ", ")).")
        }
        return token
    }

    static func presentedToken(_ request: Request) -> String? {
        if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            return String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        if let cookies = request.headers[.cookie] {
            for pair in cookies.split(separator: ";") {
                let trimmed = pair.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("vacancy_token=") { return String(trimmed.dropFirst("vacancy_token=".count)) }
            }
        }
        return request.uri.formQueryParameters["token"].map(String.init)
    }

    static func unauthorized(_ detail: String) -> Problem {
        Problem(
            "unauthorized", title: "Subscriber token required", status: .unauthorized, detail: detail,
            headers: [.wwwAuthenticate: #"Bearer realm="vacancy-events""#])
    }
}
