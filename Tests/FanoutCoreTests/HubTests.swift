import CoreMetrics
import FanoutCore
import Foundation
import NIOCore
import NIOEmbedded
import Testing

/// The hub without a database or a socket: registration against publishing, the window a
/// resume is served from, and an epoch that takes back events already handed out.
@Suite struct HubTests {
    static func hub(window: Int = 1000) -> Hub {
        Hub(
            maximumSubscribers: 10, windowSize: window,
            meters: .init(
                delivered: Counter(label: "delivered"), slowDisconnects: Counter(label: "slow"),
                subscribers: { Gauge(label: "subscribers", dimensions: [("transport", $0)]) }))
    }

    static func event(_ id: Int64, topics: [String]) -> LoggedEvent {
        LoggedEvent(id: id, topics: topics, frame: StreamFrame(id: id, bytes: ByteBuffer(string: "id: \(id)\ndata: {}\n\n")))
    }

    static func subscriber(_ id: Int, topics: [String], on loop: EmbeddedEventLoop) -> Subscriber {
        Subscriber(
            id: id, topics: topics, transport: "http1", expiresAt: nil, limits: .init(maximumFrames: 100, maximumBytes: 1 << 20),
            eventLoop: loop, hooks: HookRecorder().hooks)
    }

    @Test func aSubscriberRegisteredAtTheHeadIsHandedEveryLaterEventOnItsTopicsOnce() throws {
        let hub = Self.hub()
        let loop = EmbeddedEventLoop()
        guard case .failure(.notReady) = hub.register({ Self.subscriber($0, topics: ["a"], on: loop) }) else {
            Issue.record("no registration before the log was read")
            return
        }
        hub.start(at: 10)
        hub.publish([Self.event(11, topics: ["a"])])
        guard case .success(let (subscriber, head)) = hub.register({ Self.subscriber($0, topics: ["a", "b"], on: loop) }) else {
            Issue.record("registered")
            return
        }
        #expect(head == 11, "live after the head it was registered at")
        hub.publish([Self.event(12, topics: ["a", "b"]), Self.event(13, topics: ["c"]), Self.event(14, topics: ["b"])])
        #expect(subscriber.lastQueuedID == 14)
        hub.publish([Self.event(14, topics: ["a"])])
        #expect(hub.head == 14, "an id at or below the head is not published again")
        #expect(hub.followerCounts(of: ["a", "b", "c"]) == ["a": 1, "b": 1, "c": 0])
        hub.remove(subscriber)
        #expect(hub.count == 0)
        #expect(hub.topicCounts().isEmpty)
    }

    @Test func aResumeIsServedFromTheWindowWithWhatItMissedOnItsTopics() {
        let hub = Self.hub(window: 500)
        hub.start(at: 0)
        hub.publish((Int64(1)...1000).map { Self.event($0, topics: [$0 % 2 == 0 ? "even" : "odd"]) })
        // The window holds 501…1000.
        #expect(hub.recent(after: 499, through: 1000, topics: ["even"]) == nil, "before the window: read from the table")
        let missed = hub.recent(after: 700, through: 720, topics: ["even"])
        #expect(missed?.map(\.id) == Array(stride(from: Int64(702), through: 720, by: 2)))
        #expect(hub.recent(after: 500, through: 1000, topics: ["odd", "even"])?.count == 500)
        #expect(hub.recent(after: 1000, through: 1000, topics: ["odd"]) == [], "nothing missed")
    }

    @Test func anEpochThatBeganBelowTheHeadRewindsItAndNamesWhoWasHandedTooMuch() throws {
        let hub = Self.hub()
        let loop = EmbeddedEventLoop()
        hub.start(at: 0)
        guard case .success(let (subscriber, _)) = hub.register({ Self.subscriber($0, topics: ["a"], on: loop) }) else {
            Issue.record("registered")
            return
        }
        hub.publish((Int64(1)...10).map { Self.event($0, topics: ["a"]) })
        let (rewound, affected) = hub.adopt([HistoryStart(epoch: 1, previousLastID: 6, skipped: 7...20)])
        #expect(rewound == 6)
        #expect(affected.map(\.id) == [subscriber.id])
        #expect(hub.head == 6)
        #expect(hub.isSkipped(8) && !hub.isSkipped(21))
        #expect(hub.recent(after: 0, through: 10, topics: ["a"])?.map(\.id) == Array(1...6), "the window forgets what was taken back")
    }
}

extension LoggedEvent: Equatable {
    public static func == (lhs: LoggedEvent, rhs: LoggedEvent) -> Bool { lhs.id == rhs.id && lhs.topics == rhs.topics }
}
