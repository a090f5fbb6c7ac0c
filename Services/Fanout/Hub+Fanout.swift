import FanoutCore
import Foundation
import Shared

extension Hub {
    /// A hub counting into `metrics`.
    convenience init(maximumSubscribers: Int, windowSize: Int, metrics: AppMetrics) {
        self.init(
            maximumSubscribers: maximumSubscribers, windowSize: windowSize,
            meters: Meters(
                delivered: metrics.counter("vacancy_fanout_events_delivered_total"),
                slowDisconnects: metrics.counter("vacancy_fanout_slow_consumer_disconnects_total"),
                subscribers: { metrics.gauge("vacancy_fanout_subscribers", [("transport", $0)]) }))
    }

    /// Takes in the log's epochs (see `adopt(_:)` taking `HistoryStart`s).
    func adopt(_ epochs: [LogEpochs.Epoch]) -> (rewoundTo: Int64?, affected: [Subscriber]) {
        adopt(epochs.map { HistoryStart(epoch: $0.epoch, previousLastID: $0.previousLastID, skipped: $0.skipped) })
    }

    /// Open streams per public topic on this instance (private topics are never counted).
    func publicTopicCounts() -> [String: Int] {
        topicCounts().filter { topic, _ in Topic.kind(of: topic).map { !Topic.isPrivate($0) } ?? false }
    }

    /// What this instance is doing now, for the `metrics` events `admin` subscribers get;
    /// takes the interval's delivery lags (the next snapshot has the next interval's).
    func snapshot(interval: Duration, database: DatabaseFigures?) -> MetricsSnapshot {
        let p99 = lags.takeP99()
        let figures = figures()
        return MetricsSnapshot(
            subscribers: figures.subscribers, subscribersByTransport: figures.subscribersByTransport, topics: figures.topics,
            head: figures.head, window: figures.window, eventsDelivered: figures.eventsDelivered,
            slowConsumerDisconnects: figures.slowConsumerDisconnects, intervalSeconds: Double(interval.components.seconds),
            deliveryLagP99Milliseconds: p99, database: database)
    }
}

/// What the `metrics` event tells of the database: bookings made in the last interval and
/// the calculator's backlog (changes not yet turned into events, and the oldest one's age).
/// Encoded as part of `MetricsSnapshot`, flat beside its own figures.
struct DatabaseFigures: Sendable {
    let bookingsPerSecond: Double
    let changesWaiting: Int
    let oldestChangeSeconds: Double
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
