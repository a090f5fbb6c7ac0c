import CoreMetrics
import Foundation
import NIOCore
import Synchronization

/// An event read from the log, encoded once for every subscriber that gets it.
public struct LoggedEvent: Sendable {
    public let id: Int64
    public let topics: [String]
    public let frame: StreamFrame

    public init(id: Int64, topics: [String], frame: StreamFrame) {
        self.id = id
        self.topics = topics
        self.frame = frame
    }
}

/// Where a history of the log begins (an epoch: the log goes on from `previousLastID`,
/// and ids in `skipped` belong to no event of it), as the hub needs to know it.
public struct HistoryStart: Sendable, Equatable {
    public let epoch: Int
    public let previousLastID: Int64
    public let skipped: ClosedRange<Int64>?

    public init(epoch: Int, previousLastID: Int64, skipped: ClosedRange<Int64>?) {
        self.epoch = epoch
        self.previousLastID = previousLastID
        self.skipped = skipped
    }
}

/// Who follows what: subscribers indexed by topic, the log head they have been brought up
/// to, and a bounded window of recent events for resumes. Registration and dispatch share
/// one lock, so a subscriber registered at head H receives every event after H, live.
public final class Hub: Sendable {
    public let maximumSubscribers: Int
    public let windowSize: Int

    private struct State {
        var subscribers: [Int: Subscriber] = [:]
        var byTopic = TopicIndex<Subscriber>()
        var nextID = 1
        /// The id of the last event dispatched; nil until the feed has read the log once.
        public var head: Int64?
        var window = CircularBuffer<LoggedEvent>()
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
    public let lags = DeliveryLagWindow()
    private let meters: Meters

    /// Where the hub counts: deliveries, slow readers cut, and open streams per transport.
    public struct Meters: Sendable {
        public var delivered: Counter
        public var slowDisconnects: Counter
        public var subscribers: @Sendable (_ transport: String) -> Gauge

        public init(delivered: Counter, slowDisconnects: Counter, subscribers: @escaping @Sendable (String) -> Gauge) {
            self.delivered = delivered
            self.slowDisconnects = slowDisconnects
            self.subscribers = subscribers
        }
    }

    public init(maximumSubscribers: Int, windowSize: Int, meters: Meters) {
        self.maximumSubscribers = maximumSubscribers
        self.windowSize = windowSize
        self.meters = meters
    }

    public enum Refusal: Error {
        case full, notReady
    }

    /// Registers a subscriber and returns the head it will be live from.
    public func register(_ make: (Int) -> Subscriber) -> Result<(Subscriber, Int64), Refusal> {
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
            meters.subscribers(subscriber.transport).record(state.perTransport[subscriber.transport] ?? 0)
            return .success((subscriber, head))
        }
    }

    public func remove(_ subscriber: Subscriber) {
        state.withLock { state in
            guard state.subscribers.removeValue(forKey: subscriber.id) != nil else { return }
            state.churn += 1
            state.byTopic.remove(id: subscriber.id, topics: subscriber.topics)
            state.perTransport[subscriber.transport, default: 1] -= 1
            meters.subscribers(subscriber.transport).record(state.perTransport[subscriber.transport] ?? 0)
        }
    }

    public var count: Int { state.withLock { $0.subscribers.count } }
    /// Streams opened plus streams closed since start.
    public var churn: Int { state.withLock { $0.churn } }
    public var head: Int64? { state.withLock { $0.head } }

    /// Sets where the log starts for this instance (the log head when it started), with the
    /// newest events before it (oldest first, ending at `head`) as the first window.
    public func start(at head: Int64, recent: [LoggedEvent] = []) {
        state.withLock { state in
            guard state.head == nil else { return }
            state.head = head
            for event in recent.suffix(windowSize) { state.window.append(event) }
        }
    }

    public var epoch: Int { state.withLock { $0.epoch } }

    /// Whether `id` lies in the ids an epoch skipped: it was served from a history the
    /// primary no longer has.
    public func isSkipped(_ id: Int64) -> Bool {
        state.withLock { state in state.skipped.contains { $0.contains(id) } }
    }

    /// Takes in epochs newer than the newest known (oldest first). When one began below this
    /// instance's head (the primary failed over and lost events that were read here), the
    /// head and the window go back to where the new history starts, and the subscribers
    /// that were handed anything past it are returned, to be sent a `reset`.
    public func adopt(_ epochs: [HistoryStart]) -> (rewoundTo: Int64?, affected: [Subscriber]) {
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
    public func publish(_ events: [LoggedEvent]) {
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
        // takes too), and all but the last batch of each loop's subscribers already went to
        // their loop during the dispatch; the rest can be scheduled outside the lock.
        dispatch.send()
        if deliveries > 0 { meters.delivered.increment(by: deliveries) }
    }

    /// A subscriber was cut off for not reading.
    public func noteSlowConsumer() {
        state.withLock { $0.slowDisconnectsTotal += 1 }
        meters.slowDisconnects.increment()
    }

    /// Why a registration now would be refused, if it would.
    public func refusal() -> Refusal? {
        state.withLock { state in
            if state.head == nil { return .notReady }
            return state.subscribers.count < maximumSubscribers ? nil : .full
        }
    }

    /// The window's events after `after` up to `through` on any of `topics`, or nil when the
    /// window no longer reaches back to `after`. The window is in id order: the first event
    /// after `after` is found by bisection, so a resume costs what it missed, not the window.
    public func recent(after: Int64, through: Int64, topics: Set<String>) -> [LoggedEvent]? {
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
            var missed: [LoggedEvent] = []
            var index = window.index(window.startIndex, offsetBy: low)
            while index != window.endIndex, window[index].id <= through {
                if window[index].topics.contains(where: topics.contains) { missed.append(window[index]) }
                index = window.index(after: index)
            }
            return missed
        }
    }

    /// Every subscriber now registered (for pings, expiry and shutdown).
    public func all() -> [Subscriber] {
        state.withLock { Array($0.subscribers.values) }
    }

    /// The subscribers following `topic`.
    public func followers(of topic: String) -> [Subscriber] {
        state.withLock { $0.byTopic.followers(of: topic) }
    }

    /// Open streams following each of `topics` on this instance.
    public func followerCounts(of topics: [String]) -> [String: Int] {
        state.withLock { state in Dictionary(uniqueKeysWithValues: topics.map { ($0, state.byTopic.count(of: $0)) }) }
    }

    /// Open streams per topic on this instance.
    public func topicCounts() -> [String: Int] {
        state.withLock { $0.byTopic.counts }
    }

    /// What this instance is doing now (for the `admin` stream's `metrics` events).
    public struct Figures: Sendable {
        public let subscribers: Int
        public let subscribersByTransport: [String: Int]
        public let topics: Int
        public let head: Int64
        public let window: Int
        public let eventsDelivered: Int
        public let slowConsumerDisconnects: Int
    }

    public func figures() -> Figures {
        state.withLock { state in
            Figures(
                subscribers: state.subscribers.count, subscribersByTransport: state.perTransport.filter { $0.value > 0 },
                topics: state.byTopic.topicCount, head: state.head ?? 0, window: state.window.count,
                eventsDelivered: state.deliveredTotal, slowConsumerDisconnects: state.slowDisconnectsTotal)
        }
    }
}
