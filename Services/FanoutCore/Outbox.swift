import CoreMetrics
import Foundation
import NIOCore
import Synchronization

/// The subscribers of one event loop that have frames waiting. A frame handed to a
/// subscriber waits in the subscriber's own inbox; the first one after a pass puts the
/// subscriber here, and the first subscriber here schedules one task on the loop, a pass,
/// which takes each subscriber once: its frames are written (one body part) and it is
/// flushed (an HTTP/2 connection once, after its last stream) before the next is touched.
/// A dispatch to 10,000 subscribers costs a hop per event loop for every
/// `FrameDispatch.wakeBatch` of them, not a wake-up per subscriber.
public final class Outbox: Sendable {
    public let eventLoop: any EventLoop
    private struct State {
        var subscribers: [Subscriber] = []
        var scheduled = false
    }
    private let state = Mutex(State())
    /// Touched only on `eventLoop`.
    let lags: LoopLags
    /// `vacancy_fanout_pass_seconds`: how long each pass takes, from its first subscriber to
    /// its last (what an event waits on this loop behind the subscribers before its own).
    /// Recorded through swift-metrics' global factory: a loop's passes serve every app in
    /// the process.
    private let passDuration: CoreMetrics.Timer

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        lags = LoopLags()
        passDuration = CoreMetrics.Timer(label: "vacancy_fanout_pass_seconds", preferredDisplayUnit: .seconds)
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

    /// Subscribers whose inboxes were empty until now: they are taken in the next pass.
    func schedule(_ subscribers: [Subscriber]) {
        guard !subscribers.isEmpty else { return }
        let schedule = state.withLock { state in
            state.subscribers.append(contentsOf: subscribers)
            defer { state.scheduled = true }
            return !state.scheduled
        }
        if schedule { eventLoop.execute { self.pass() } }
    }

    private func pass() {
        let subscribers = state.withLock { state in
            defer {
                state.subscribers = []
                state.scheduled = false
            }
            return state.subscribers
        }
        let now = NIODeadline.now()
        lags.beginPass()
        // An HTTP/1.1 stream is written and flushed at once. The streams of one HTTP/2
        // connection are written together with its flushes held, and the connection is
        // flushed once as soon as the last of them is written: its bytes leave while the next
        // connection's streams are written, not after the whole pass.
        // Each connection's streams gather on its batcher, with no lookup by hash.
        var connections: [FlushBatcher] = []
        for subscriber in subscribers {
            guard let batcher = subscriber.batcherOnLoop else {
                subscriber.deliverOnLoop(now: now)
                continue
            }
            if batcher.passStreams.isEmpty { connections.append(batcher) }
            batcher.passStreams.append(subscriber)
        }
        for batcher in connections {
            batcher.hold()
            for stream in batcher.passStreams { stream.deliverOnLoop(now: now) }
            batcher.passStreams.removeAll(keepingCapacity: true)
            batcher.release()
        }
        lags.endPass()
        passDuration.recordNanoseconds((NIODeadline.now() - now).nanoseconds)
    }
}

/// Frames handed to subscribers in one publish, and whom that wakes, per outbox: each
/// outbox's lock is taken once per publish, not once per subscriber.
///
/// Each event loop gets its own copy of a frame. Every delivery retains and releases the
/// frame and its bytes several times; with one shared copy, the loops writing at once on
/// different cores would pass those reference counts' cache line back and forth on every
/// delivery.
public struct FrameDispatch {
    private var waking: [(outbox: Outbox, subscribers: [Subscriber], connection: ObjectIdentifier?)] = []
    /// The frame being handed out, and each outbox's copy of it.
    private var source: StreamFrame?
    private var copies: [(outbox: Outbox, frame: StreamFrame)] = []

    public init() {}

    /// Hands `frame` (the copy of the subscriber's event loop) to `subscriber` (see
    /// `Subscriber.push`); returns whether it was taken.
    public mutating func push(_ frame: StreamFrame, to subscriber: Subscriber) -> Bool {
        switch subscriber.take(copy(of: frame, for: subscriber.outbox)) {
        case .dropped:
            return false
        case .queued:
            return true
        case .wakes:
            let index: Int
            if let found = waking.firstIndex(where: { $0.outbox === subscriber.outbox }) {
                index = found
            } else {
                index = waking.count
                waking.append((subscriber.outbox, [], nil))
            }
            // Streams go to their loop as soon as `wakeBatch` wait, so it starts writing while
            // the dispatch goes on through the rest (10,000 followers take it about 2 ms). A
            // batch ends between HTTP/2 connections, not inside one: a pass flushes each
            // connection once, after its streams, and the topic index keeps a connection's
            // streams together.
            if waking[index].subscribers.count >= Self.wakeBatch,
                subscriber.connection == nil || subscriber.connection != waking[index].connection
            {
                waking[index].outbox.schedule(waking[index].subscribers)
                waking[index].subscribers.removeAll(keepingCapacity: true)
            }
            waking[index].subscribers.append(subscriber)
            waking[index].connection = subscriber.connection
            return true
        }
    }

    /// Subscribers handed to an outbox at a time during a dispatch.
    static let wakeBatch = 256

    /// `outbox`'s copy of `frame`: the frame itself for the first outbox it goes to.
    private mutating func copy(of frame: StreamFrame, for outbox: Outbox) -> StreamFrame {
        if source !== frame {
            source = frame
            copies.removeAll(keepingCapacity: true)
        }
        if let copy = copies.first(where: { $0.outbox === outbox }) { return copy.frame }
        let copy = copies.isEmpty ? frame : frame.copy()
        copies.append((outbox, copy))
        return copy
    }

    /// Schedules the passes that write what was pushed.
    public func send() {
        for (outbox, subscribers, _) in waking { outbox.schedule(subscribers) }
    }
}

/// The delivery lags of one event loop's writes, for the `lag` hook. Within a pass each event
/// is measured once, when the pass ends (the lag of its last subscriber on this loop), not
/// once per subscriber; an event written after the pass it came in (a reader that was
/// behind) is measured when it is written. Touched only on the loop.
final class LoopLags: @unchecked Sendable {
    // @unchecked: only used on its outbox's event loop.
    private var inPass = false
    /// The newest event measured in a pass.
    private var measuredThrough: Int64 = 0
    private var pending: [(loggedAt: Date, hook: @Sendable (TimeInterval) -> Void)] = []
    private var newestPending: Int64 = 0

    func beginPass() {
        inPass = true
        newestPending = measuredThrough
    }

    func wrote(_ frames: [StreamFrame], hook: @escaping @Sendable (TimeInterval) -> Void) {
        var now: Date?
        for frame in frames {
            guard let loggedAt = frame.loggedAt else { continue }
            if inPass, let id = frame.id, id > measuredThrough {
                guard id > newestPending else { continue }  // measured at the end of this pass
                newestPending = id
                pending.append((loggedAt, hook))
            } else {
                if now == nil { now = Date() }
                hook(max(0, now!.timeIntervalSince(loggedAt)))
            }
        }
    }

    func endPass() {
        inPass = false
        measuredThrough = newestPending
        guard !pending.isEmpty else { return }
        let now = Date()
        for (loggedAt, hook) in pending { hook(max(0, now.timeIntervalSince(loggedAt))) }
        pending.removeAll(keepingCapacity: true)
    }
}
