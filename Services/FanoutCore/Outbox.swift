import NIOCore
import Synchronization

/// Frames on their way to the subscribers of one event loop. The first frame after the
/// outbox was emptied schedules one task on the loop, which writes every frame handed over
/// until then and flushes each stream once: a dispatch to 10,000 subscribers costs a hop per
/// event loop, not a wake-up per subscriber.
public final class Outbox: Sendable {
    public let eventLoop: any EventLoop
    private struct State {
        var items: [(Subscriber, StreamFrame)] = []
        var scheduled = false
    }
    private let state = Mutex(State())

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private static let all = Mutex<[ObjectIdentifier: Outbox]>([:])

    /// The one outbox of `eventLoop`.
    public static func `for`(_ eventLoop: any EventLoop) -> Outbox {
        all.withLock { all in
            let key = ObjectIdentifier(eventLoop as AnyObject)
            if let outbox = all[key] { return outbox }
            let outbox = Outbox(eventLoop: eventLoop)
            all[key] = outbox
            return outbox
        }
    }

    public func send(_ frame: StreamFrame, to subscriber: Subscriber) {
        let schedule = state.withLock { state in
            state.items.append((subscriber, frame))
            defer { state.scheduled = true }
            return !state.scheduled
        }
        if schedule { eventLoop.execute { self.deliver() } }
    }

    private func deliver() {
        let items = state.withLock { state in
            defer {
                state.items = []
                state.scheduled = false
            }
            return state.items
        }
        // Every frame is staged first and each stream then written once, so a backlog of
        // events reaches a subscriber as one body part.
        var staged: [Subscriber] = []
        for (subscriber, frame) in items where subscriber.stageOnLoop(frame) { staged.append(subscriber) }
        var written: [Subscriber] = []
        var batchers: [ObjectIdentifier: FlushBatcher] = [:]
        for subscriber in staged where subscriber.drainOnLoop() {
            written.append(subscriber)
            if let batcher = subscriber.batcherOnLoop, batchers.updateValue(batcher, forKey: ObjectIdentifier(batcher)) == nil {
                batcher.hold()
            }
        }
        for subscriber in written { subscriber.flushOnLoop() }
        // One flush per HTTP/2 connection for all of its streams written above.
        for batcher in batchers.values { batcher.release() }
    }
}
