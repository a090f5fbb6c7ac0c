import FanoutCore
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
    let verifier: SubscriberTokenVerifier
    let settings: StreamSettings
    private let metrics: AppMetrics
    private let resumes: Counter
    private let reads: LogReads

    struct StreamSettings: Sendable {
        var retryMilliseconds = 2000
        var bufferFrames = 1000
        var bufferBytes = 1 << 20
        /// A stream whose client takes nothing this long while events wait for it is cut.
        var stallSeconds = 20
        /// Events per history page read from the table.
        var historyPage = 1000
    }

    /// Shared by every subscriber (they capture nothing of their own).
    private let hooks: Subscriber.Hooks

    init(database: Database, hub: Hub, verifier: SubscriberTokenVerifier, settings: StreamSettings, metrics: AppMetrics, reads: LogReads) {
        self.database = database
        self.hub = hub
        self.verifier = verifier
        self.settings = settings
        self.metrics = metrics
        resumes = metrics.counter("vacancy_fanout_resumes_total")
        self.reads = reads
        let lag = metrics.timer("vacancy_fanout_delivery_lag_seconds")
        let coalesced = metrics.counter("vacancy_fanout_coalesced_events_total", [("reason", "slow_reader")])
        hooks = Subscriber.Hooks(
            lag: { seconds in
                lag.recordNanoseconds(Int64(seconds * 1e9))
                hub.lags.record(seconds: seconds)
            },
            slowConsumer: { reason in
                hub.noteSlowConsumer()
                metrics.counter("vacancy_fanout_streams_ended_total", [("reason", reason.rawValue)]).increment()
            },
            coalesced: { coalesced.increment(by: Int64($0)) },
            finishing: { metrics.counter("vacancy_fanout_streams_ended_total", [("reason", $0.rawValue)]).increment() },
            ended: { hub.remove($0) },
            abort: { Self.abort($0) }
        )
    }

    /// Ends a stream that was handed events the new primary lacks: the client refetches,
    /// then resumes from `head`, where the new history starts. Without a frame id, so it is
    /// written after events with higher ids.
    static func historyChangedFrame(head: Int64) -> Frame {
        let data = #"{"reason":"history_changed","snapshot":"/api/v1/calendar","last_event_id":\#(head)}"#
        return Frame(id: nil, bytes: ServerSentEvent.frame(id: head, event: "reset", data: data))
    }

    static let expiredFrame = Frame(id: nil, bytes: ServerSentEvent.frame(id: nil, event: "expired", data: #"{"reason":"token_expired"}"#))

    /// The route behind the stream handler. It sees an `/events` request only when the
    /// handler did not take it as a stream, so it answers with the problem that refused it.
    func register(on router: Router<VacancyRequestContext>) {
        router.get("/events") { request, _ -> Response in
            _ = try validate(request)
            switch hub.refusal() {
            case .full?: throw tooManySubscribers()
            case .notReady?: throw notReady()
            case nil:
                // The stream handler did not take a request it could have: the hub had room
                // a moment later than it asked, or the request was pipelined behind another
                // one still being answered on its connection. Either way: try again.
                throw Problem(
                    "not-ready", title: "Not ready", status: .serviceUnavailable, detail: "Retry the subscription.",
                    headers: [.retryAfter: "1"])
            }
        }
    }

    /// A subscription's parameters, checked.
    struct Subscription {
        let topics: [String]
        let lastEventID: Int64?
        let token: SubscriberToken?
    }

    /// Topics, `Last-Event-ID` and the token for private topics, or the problem refusing them.
    func validate(_ request: Request) throws -> Subscription {
        let query = request.uri.formQueryParameters
        let topics = try Self.topics(query.getAll("topic").map { String($0) })
        let lastEventID = try Self.lastEventID(request)
        let token = try authorize(request, topics: topics)
        return Subscription(topics: topics, lastEventID: lastEventID, token: token)
    }

    func tooManySubscribers() -> Problem {
        Problem(
            "too-many-subscribers", title: "Too many subscribers", status: .serviceUnavailable,
            detail: "This instance has \(hub.maximumSubscribers) open streams; retry shortly or elsewhere.",
            headers: [.retryAfter: "5"])
    }

    func notReady() -> Problem {
        Problem(
            "not-ready", title: "Not ready", status: .serviceUnavailable,
            detail: "The event log has not been read yet; retry shortly.", headers: [.retryAfter: "1"])
    }

    /// Takes `head` as a stream on the handler's channel, or returns nil when it would be
    /// refused (the router then answers it). On the channel's event loop.
    ///
    /// The subscriber is registered first and its history (or a reset) worked out after:
    /// anything committed after the head it was registered at reaches it live, waiting
    /// behind the history, so nothing falls in between.
    func open(_ head: HTTPRequest, context: ChannelHandlerContext) -> Subscriber? {
        let request = Request(head: head, body: .init(buffer: ByteBuffer()))
        guard let subscription = try? validate(request) else { return nil }
        let channel = context.channel
        let transport = channel.parent?.parent == nil ? "http1" : "h2"  // an HTTP/2 stream hangs off its connection
        let connection = transport == "h2" ? channel.parent.map { ObjectIdentifier($0) } : nil
        let hooks = self.hooks
        let limits = StreamStateMachine.Limits(
            maximumFrames: settings.bufferFrames, maximumBytes: settings.bufferBytes, stallTimeout: .seconds(Int64(settings.stallSeconds)))
        let registration = hub.register { id in
            Subscriber(
                id: id, topics: subscription.topics, transport: transport, expiresAt: subscription.token?.expiresAt,
                limits: limits, eventLoop: context.eventLoop, connection: connection, hooks: hooks
            )
        }
        guard case .success(let (subscriber, logHead)) = registration else { return nil }
        subscriber.attach(context)

        let requestID = RequestIDMiddleware<VacancyRequestContext>.id(for: head.headerFields[.requestID])
        var fields: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .requestID: requestID]
        fields[HTTPField.Name("X-Accel-Buffering")!] = "no"
        // The connection closes when the stream ends (whoever ends it), so an HTTP/1.1 client
        // must not pool it for its next request. HTTP/2 has no such header: its stream just ends.
        if transport == "http1" { fields[.connection] = "close" }
        let response = HTTPResponse(status: .ok, headerFields: fields)
        var opening = ServerSentEvent.retry(milliseconds: settings.retryMilliseconds)
        opening.writeString(": vacancy stream\n\n")
        let preamble = opening

        guard let lastEventID = subscription.lastEventID, lastEventID != logHead else {
            subscriber.start(head: response, preamble: preamble, history: [], after: logHead)
            return subscriber
        }
        let eventLoop = context.eventLoop
        let topics = subscription.topics
        Task {
            do {
                let (frames, after) = try await history(after: lastEventID, head: logHead, topics: topics)
                eventLoop.execute { subscriber.start(head: response, preamble: preamble, history: frames, after: after) }
            } catch {
                let problem = (error as? Problem) ?? Problem.databaseUnavailable()
                let rendered = try? problem.rendered(instance: "/events", requestID: requestID)
                eventLoop.execute { subscriber.refuse(problem.status, rendered) }
            }
        }
        return subscriber
    }

    /// What a resuming subscriber missed: the events after `lastEventID` through `head` on
    /// its topics, from memory when the window reaches back far enough, else from the table;
    /// or a `reset` when the id is older than the log keeps or newer than its head. Also
    /// returns the id after which live events are new to this subscriber.
    private func history(after lastEventID: Int64?, head: Int64, topics: [String]) async throws -> ([Frame], Int64) {
        guard let lastEventID, lastEventID < head else {
            guard let lastEventID, lastEventID > head else { return ([], head) }
            // Ahead of this instance's head: ahead of the log itself, or just not read yet?
            reads.bounds.increment()
            let (_, newest) = try await EventFeed.bounds(database)
            if lastEventID > newest { return ([reset("ahead_of_log", head: head)], head - 1) }
            return ([], lastEventID)  // committed, on its way live; events up to it are dropped by id
        }
        resumes.increment()
        // An id the current history skipped was served from one the primary no longer has.
        if hub.isSkipped(lastEventID) { return ([reset("history_changed", head: head)], head - 1) }
        let topicSet = Set(topics)
        if let recent = hub.recent(after: lastEventID, through: head, topics: topicSet) {
            return (recent.map(\.frame), lastEventID)
        }
        reads.bounds.increment()
        let (oldest, _) = try await EventFeed.bounds(database)
        // An empty log (oldest 0) behind a head of ours has pruned everything this subscriber missed.
        if oldest == 0 || lastEventID + 1 < oldest { return ([reset("behind_retention", head: head)], head - 1) }
        var frames: [Frame] = []
        var after = lastEventID
        while true {
            reads.history.increment()
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

    func reset(_ reason: String, head: Int64) -> Frame {
        metrics.counter("vacancy_fanout_resets_total", [("reason", reason)]).increment()
        let data = #"{"reason":"\#(reason)","snapshot":"/api/v1/calendar","last_event_id":\#(head)}"#
        return Frame(id: head, bytes: ServerSentEvent.frame(id: head, event: "reset", data: data), loggedAt: nil)
    }

    // MARK: Parsing and authorisation

    static func topics(_ values: [String], per what: String = "stream") throws -> [String] {
        guard !values.isEmpty else { throw Problem.badParameter("topic", "at least one topic is required") }
        guard values.count <= Topic.maximumPerSubscription else {
            throw Problem.badParameter("topic", "at most \(Topic.maximumPerSubscription) topics per \(what), not \(values.count)")
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
            token = try verifier.verify(compact)
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
