import FanoutCore
import Foundation
import Metrics
import NIOCore
import Shared
import Synchronization

/// An event read from the log, encoded once for every subscriber that gets it.
struct LogEvent: Sendable {
    let id: Int64
    let topics: [String]
    let frame: Frame
}

/// Who follows what: subscribers indexed by topic, the log head they have been brought up
/// to, and a bounded window of recent events for resumes. Registration and dispatch share
/// one lock, so a subscriber registered at head H receives every event after H, live.
final class Hub: Sendable {
    let maximumSubscribers: Int
    let windowSize: Int

    private struct State {
        var subscribers: [Int: Subscriber] = [:]
        var byTopic = TopicIndex<Subscriber>()
        var nextID = 1
        /// The id of the last event dispatched; nil until the feed has read the log once.
        var head: Int64?
        var window = CircularBuffer<LogEvent>()
        var perTransport: [String: Int] = [:]
        var deliveredTotal = 0
        var slowDisconnectsTotal = 0
        /// Subscribers registered plus subscribers removed, ever.
        var churn = 0
        /// The newest log epoch this instance knows of (0 before the first).
        var epoch = 0
        /// Ids no event of the current history has (skipped when an epoch began).
        var skipped: [ClosedRange<Int64>] = []
    }
    private let state = Mutex(State())
    /// Delivery lags since the last `metrics` event.
    let lags = DeliveryLagWindow()
    private let metrics: AppMetrics
    private let delivered: Counter
    private let slowDisconnects: Counter

    init(maximumSubscribers: Int, windowSize: Int, metrics: AppMetrics) {
        self.maximumSubscribers = maximumSubscribers
        self.windowSize = windowSize
        self.metrics = metrics
        delivered = metrics.counter("vacancy_fanout_events_delivered_total")
        slowDisconnects = metrics.counter("vacancy_fanout_slow_consumer_disconnects_total")
    }

    enum Refusal: Error {
        case full, notReady
    }

    /// Registers a subscriber and returns the head it will be live from.
    func register(_ make: (Int) -> Subscriber) -> Result<(Subscriber, Int64), Refusal> {
        state.withLock { state in
            guard let head = state.head else { return .failure(.notReady) }
            guard state.subscribers.count < maximumSubscribers else { return .failure(.full) }
            let subscriber = make(state.nextID)
            subscriber.registered(at: head)
            state.nextID += 1
            state.churn += 1
            state.subscribers[subscriber.id] = subscriber
            state.byTopic.insert(subscriber, id: subscriber.id, topics: subscriber.topics)
            state.perTransport[subscriber.transport, default: 0] += 1
            metrics.gauge("vacancy_fanout_subscribers", [("transport", subscriber.transport)])
                .record(state.perTransport[subscriber.transport] ?? 0)
            return .success((subscriber, head))
        }
    }

    func remove(_ subscriber: Subscriber) {
        state.withLock { state in
            guard state.subscribers.removeValue(forKey: subscriber.id) != nil else { return }
            state.churn += 1
            state.byTopic.remove(id: subscriber.id, topics: subscriber.topics)
            state.perTransport[subscriber.transport, default: 1] -= 1
            metrics.gauge("vacancy_fanout_subscribers", [("transport", subscriber.transport)])
                .record(state.perTransport[subscriber.transport] ?? 0)
        }
    }

    var count: Int { state.withLock { $0.subscribers.count } }
    /// Streams opened plus streams closed since start.
    var churn: Int { state.withLock { $0.churn } }
    var head: Int64? { state.withLock { $0.head } }

    /// Sets where the log starts for this instance (the log head when it started), with the
    /// newest events before it (oldest first, ending at `head`) as the first window.
    func start(at head: Int64, recent: [LogEvent] = []) {
        state.withLock { state in
            guard state.head == nil else { return }
            state.head = head
            for event in recent.suffix(windowSize) { state.window.append(event) }
        }
    }

    var epoch: Int { state.withLock { $0.epoch } }

    /// Whether `id` lies in the ids an epoch skipped: it was served from a history the
    /// primary no longer has.
    func isSkipped(_ id: Int64) -> Bool {
        state.withLock { state in state.skipped.contains { $0.contains(id) } }
    }

    /// Takes in epochs newer than the newest known (oldest first). When one began below this
    /// instance's head (the primary failed over and lost events that were read here), the
    /// head and the window go back to where the new history starts, and the subscribers
    /// that were handed anything past it are returned, to be sent a `reset`.
    func adopt(_ epochs: [LogEpochs.Epoch]) -> (rewoundTo: Int64?, affected: [Subscriber]) {
        state.withLock { state in
            var rewind: Int64?
            for epoch in epochs where epoch.epoch > state.epoch {
                state.epoch = epoch.epoch
                if let skipped = epoch.skipped { state.skipped.append(skipped) }
                if let head = state.head, epoch.previousLastID < head {
                    rewind = min(rewind ?? .max, epoch.previousLastID)
                }
            }
            guard let rewind else { return (nil, []) }
            state.head = rewind
            while let last = state.window.last, last.id > rewind { state.window.removeLast() }
            return (rewind, state.subscribers.values.filter { $0.lastQueuedID > rewind })
        }
    }

    /// Dispatches events (in id order, each after the current head) to the subscribers of
    /// their topics, and keeps them in the window.
    func publish(_ events: [LogEvent]) {
        var deliveries = 0
        var dispatch = FrameDispatch()
        state.withLock { state in
            for event in events {
                guard event.id > (state.head ?? 0) else { continue }
                state.head = event.id
                state.window.append(event)
                if state.window.count > windowSize { state.window.removeFirst() }
                for topic in event.topics {
                    state.byTopic.forEachFollower(of: topic) { if dispatch.push(event.frame, to: $0) { deliveries += 1 } }
                }
            }
            state.deliveredTotal += deliveries
        }
        // Every frame is in its subscriber's inbox (in log order, under the lock registration
        // takes too); the passes that write them can be scheduled outside it.
        dispatch.send()
        if deliveries > 0 { delivered.increment(by: deliveries) }
    }

    /// A subscriber was cut off for not reading.
    func noteSlowConsumer() {
        state.withLock { $0.slowDisconnectsTotal += 1 }
        slowDisconnects.increment()
    }

    /// Why a registration now would be refused, if it would.
    func refusal() -> Refusal? {
        state.withLock { state in
            if state.head == nil { return .notReady }
            return state.subscribers.count < maximumSubscribers ? nil : .full
        }
    }

    /// The window's events after `after` up to `through` on any of `topics`, or nil when the
    /// window no longer reaches back to `after`. The window is in id order: the first event
    /// after `after` is found by bisection, so a resume costs what it missed, not the window.
    func recent(after: Int64, through: Int64, topics: Set<String>) -> [LogEvent]? {
        state.withLock { state in
            let window = state.window
            guard let first = window.first, first.id <= after + 1 else {
                return window.isEmpty && after >= (state.head ?? 0) ? [] : nil
            }
            var low = 0
            var high = window.count
            while low < high {
                let middle = (low + high) / 2
                if window[window.index(window.startIndex, offsetBy: middle)].id <= after { low = middle + 1 } else { high = middle }
            }
            var missed: [LogEvent] = []
            var index = window.index(window.startIndex, offsetBy: low)
            while index != window.endIndex, window[index].id <= through {
                if window[index].topics.contains(where: topics.contains) { missed.append(window[index]) }
                index = window.index(after: index)
            }
            return missed
        }
    }

    /// Every subscriber now registered (for pings, expiry and shutdown).
    func all() -> [Subscriber] {
        state.withLock { Array($0.subscribers.values) }
    }

    /// The subscribers following `topic`.
    func followers(of topic: String) -> [Subscriber] {
        state.withLock { $0.byTopic.followers(of: topic) }
    }

    /// Open streams following each of `topics` on this instance.
    func followerCounts(of topics: [String]) -> [String: Int] {
        state.withLock { state in Dictionary(uniqueKeysWithValues: topics.map { ($0, state.byTopic.count(of: $0)) }) }
    }

    /// Open streams per public topic on this instance (private topics are never counted).
    func publicTopicCounts() -> [String: Int] {
        state.withLock { $0.byTopic.counts }.filter { topic, _ in Topic.kind(of: topic).map { !Topic.isPrivate($0) } ?? false }
    }

    /// What this instance is doing now, for the `metrics` events `admin` subscribers get;
    /// takes the interval's delivery lags (the next snapshot has the next interval's).
    func snapshot(interval: Duration, database: DatabaseFigures?) -> MetricsSnapshot {
        let p99 = lags.takeP99()
        return state.withLock { state in
            MetricsSnapshot(
                subscribers: state.subscribers.count, subscribersByTransport: state.perTransport.filter { $0.value > 0 },
                topics: state.byTopic.topicCount, head: state.head ?? 0, window: state.window.count,
                eventsDelivered: state.deliveredTotal, slowConsumerDisconnects: state.slowDisconnectsTotal,
                intervalSeconds: Double(interval.components.seconds), deliveryLagP99Milliseconds: p99, database: database)
        }
    }
}

/// What the `metrics` event tells of the database: bookings made in the last interval and
/// the calculator's backlog (changes not yet turned into events, and the oldest one's age).
struct DatabaseFigures: Encodable, Sendable {
    let bookingsPerSecond: Double
    let changesWaiting: Int
    let oldestChangeSeconds: Double

    enum CodingKeys: String, CodingKey {
        case bookingsPerSecond = "bookings_per_second"
        case changesWaiting = "changes_waiting"
        case oldestChangeSeconds = "oldest_change_seconds"
    }
}

/// One fan-out instance's figures, sent as `event: metrics` on the `admin` topic. Not part
/// of the log (it has no id): a resuming admin simply gets the next one.
struct MetricsSnapshot: Encodable, Sendable {
    let subscribers: Int
    let subscribersByTransport: [String: Int]
    let topics: Int
    let head: Int64
    let window: Int
    let eventsDelivered: Int
    let slowConsumerDisconnects: Int
    let intervalSeconds: Double
    /// Over the interval; nil when nothing was delivered.
    let deliveryLagP99Milliseconds: Double?
    /// Nil when the database could not be asked.
    let database: DatabaseFigures?

    enum CodingKeys: String, CodingKey {
        case subscribers, topics, head, window
        case subscribersByTransport = "subscribers_by_transport"
        case eventsDelivered = "events_delivered_total"
        case slowConsumerDisconnects = "slow_consumer_disconnects_total"
        case intervalSeconds = "interval_seconds"
        case deliveryLagP99Milliseconds = "delivery_lag_p99_ms"
        case bookingsPerSecond = "bookings_per_second"
        case changesWaiting = "changes_waiting"
        case oldestChangeSeconds = "oldest_change_seconds"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(subscribers, forKey: .subscribers)
        try container.encode(subscribersByTransport, forKey: .subscribersByTransport)
        try container.encode(topics, forKey: .topics)
        try container.encode(head, forKey: .head)
        try container.encode(window, forKey: .window)
        try container.encode(eventsDelivered, forKey: .eventsDelivered)
        try container.encode(slowConsumerDisconnects, forKey: .slowConsumerDisconnects)
        try container.encode(intervalSeconds, forKey: .intervalSeconds)
        try container.encode(deliveryLagP99Milliseconds, forKey: .deliveryLagP99Milliseconds)
        try container.encode(database?.bookingsPerSecond, forKey: .bookingsPerSecond)
        try container.encode(database?.changesWaiting, forKey: .changesWaiting)
        try container.encode(database?.oldestChangeSeconds, forKey: .oldestChangeSeconds)
    }
}
