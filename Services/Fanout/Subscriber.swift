import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP2
import NIOHTTPTypes
import Shared
import Synchronization

/// One piece of a stream: an event from the log (with its id and commit time) or a comment.
struct Frame: Sendable {
    let id: Int64?
    let bytes: ByteBuffer
    /// When the event was appended to the log, for the delivery-lag histogram.
    let loggedAt: Date?

    static func comment(_ text: String) -> Frame {
        Frame(id: nil, bytes: ServerSentEvent.comment(text), loggedAt: nil)
    }
}

/// Why a subscriber's stream was ended by the fan-out (a slow consumer is cut off instead,
/// see `vacancy_fanout_slow_consumer_disconnects_total`).
enum StreamEnd: String, Sendable {
    case tokenExpired = "token_expired"
    case shutdown
    /// The database failed over to a primary that lacks events this stream was sent.
    case historyChanged = "history_changed"
}

/// One open stream, written straight into its channel on the channel's event loop: no task
/// and no async writer per subscriber. Frames pushed from any thread go through the event
/// loop's `Outbox`, so one dispatch reaches all of a loop's subscribers in one hop.
///
/// What the channel cannot take yet (its write buffer is past its high-water mark, or the
/// history is still being read) waits here, bounded by `maximumFrames` and `maximumBytes`;
/// past either, the stream is given up and the client resumes by `Last-Event-ID`.
final class Subscriber: @unchecked Sendable {
    // @unchecked: `shared` is the only state touched off the event loop; `loop` is only
    // read and written on `eventLoop` (everything under "On the event loop" runs there, and
    // `push` and `finish` hop to it).
    let id: Int
    let topics: [String]
    let transport: String
    let expiresAt: Date?
    let maximumFrames: Int
    let maximumBytes: Int
    let eventLoop: any EventLoop
    private let outbox: Outbox
    private let hooks: Hooks

    /// What the dispatcher's threads check before handing a frame over.
    private struct Shared {
        var lastQueuedID: Int64 = 0
        var ended = false
    }
    private let shared = Mutex(Shared())

    /// Owned by the event loop.
    private struct Loop {
        var context: ChannelHandlerContext?
        /// The head and history are written; live frames go straight to the channel.
        var live = false
        var waiting = CircularBuffer<Frame>(initialCapacity: 2)
        var waitingBytes = 0
        var lastWritten: Int64 = 0
        var needsFlush = false
        var closed = false
        /// Its HTTP/2 connection's flush batcher (nil over HTTP/1.1).
        var batcher: FlushBatcher?
    }
    private var loop = Loop()

    /// What the stream reports back: delivery lag, a slow consumer cut off, why it ends, its end.
    struct Hooks: Sendable {
        var lag: @Sendable (TimeInterval) -> Void
        var slowConsumer: @Sendable () -> Void
        /// Once, from `finish`, with the reason (before the close it leads to).
        var finishing: @Sendable (StreamEnd) -> Void
        var ended: @Sendable (Subscriber) -> Void
        /// Ends the connection under a client that stopped reading (a reset for HTTP/1.1).
        var abort: @Sendable (any Channel) -> Void
    }

    init(
        id: Int, topics: [String], transport: String, expiresAt: Date?, maximumFrames: Int, maximumBytes: Int,
        eventLoop: any EventLoop, hooks: Hooks
    ) {
        self.id = id
        self.topics = topics
        self.transport = transport
        self.expiresAt = expiresAt
        self.maximumFrames = maximumFrames
        self.maximumBytes = maximumBytes
        self.eventLoop = eventLoop
        self.outbox = Outbox.for(eventLoop)
        self.hooks = hooks
    }

    /// The newest event id handed to this stream: live, or the head it was registered at.
    var lastQueuedID: Int64 { shared.withLock { $0.lastQueuedID } }

    /// Registered at `head`: every event up to it is the history's (or was already had).
    func registered(at head: Int64) {
        shared.withLock { $0.lastQueuedID = max($0.lastQueuedID, head) }
    }

    /// Hands a frame to the stream from any thread. An event id at or below the last one
    /// handed over is a duplicate (the subscriber follows several of the event's topics)
    /// and is dropped; so is anything after the stream ended. Returns whether it was taken.
    @discardableResult
    func push(_ frame: Frame) -> Bool {
        let taken = shared.withLock { shared in
            guard !shared.ended else { return false }
            if let id = frame.id {
                guard id > shared.lastQueuedID else { return false }
                shared.lastQueuedID = id
            }
            return true
        }
        if taken { outbox.send(frame, to: self) }
        return taken
    }

    /// Ends the stream after what is waiting, with `final` written last (counted by reason
    /// in `vacancy_fanout_streams_ended_total`).
    func finish(_ reason: StreamEnd, final: Frame? = nil) {
        let first = shared.withLock { shared in
            defer { shared.ended = true }
            return !shared.ended
        }
        guard first else { return }
        hooks.finishing(reason)
        eventLoop.execute {
            if let final { self.enqueueOnLoop(final) }
            self.closeOnLoop()
        }
    }

    // MARK: On the event loop

    /// The stream's channel is ready for frames: `context` is the handler that writes them.
    func attach(_ context: ChannelHandlerContext) {
        eventLoop.preconditionInEventLoop()
        loop.context = context
        loop.batcher = FlushBatcher.of(stream: context.channel)
    }

    /// The connection's batcher, while the stream runs.
    var batcherOnLoop: FlushBatcher? { loop.closed ? nil : loop.batcher }

    /// Writes the response head and the history, then goes live with whatever arrived
    /// meanwhile (events at or before the history's last id are dropped by id).
    func start(head: HTTPResponse, preamble: ByteBuffer, history: [Frame], after: Int64) {
        eventLoop.preconditionInEventLoop()
        guard !loop.closed, let context = loop.context else { return }
        context.write(NIOAny(HTTPResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPResponsePart.body(preamble)), promise: nil)
        loop.needsFlush = true
        loop.lastWritten = after
        for frame in history { writeOnLoop(frame, context: context, recordLag: false) }
        loop.live = true
        drainOnLoop()
        flushOnLoop()
        if shared.withLock({ $0.ended }) { closeOnLoop() }
    }

    /// Answers with a problem instead of a stream (its history could not be read) and closes.
    func refuse(_ status: HTTPResponse.Status, _ rendered: (headers: HTTPFields, body: ByteBuffer)?) {
        eventLoop.preconditionInEventLoop()
        guard !loop.closed, let context = loop.context else { return }
        endOnLoop()
        context.write(NIOAny(HTTPResponsePart.head(HTTPResponse(status: status, headerFields: rendered?.headers ?? [:]))), promise: nil)
        if let body = rendered?.body { context.write(NIOAny(HTTPResponsePart.body(body)), promise: nil) }
        Self.endResponse(context)
    }

    /// Takes a frame on the loop: written now if the channel can take it, else kept waiting
    /// within the bounds. Returns whether something was written (and needs a flush).
    @discardableResult
    func enqueueOnLoop(_ frame: Frame) -> Bool {
        stageOnLoop(frame) && drainOnLoop()
    }

    /// Puts a frame behind what waits. While the stream is live and its channel can take
    /// more, the frame is written by the next `drainOnLoop`; otherwise it counts against
    /// the bounds, past which the stream is given up. Returns whether a drain is worth it.
    func stageOnLoop(_ frame: Frame) -> Bool {
        guard !loop.closed else { return false }
        let writable = loop.live && loop.context?.channel.isWritable == true
        if !writable, loop.waiting.count >= maximumFrames || loop.waitingBytes + frame.bytes.readableBytes > maximumBytes {
            hooks.slowConsumer()
            abortOnLoop()
            return false
        }
        loop.waiting.append(frame)
        loop.waitingBytes += frame.bytes.readableBytes
        return writable
    }

    /// Writes everything waiting as one body part (a backlog costs one pass through the HTTP
    /// encoder, not one per event) if the stream is live and its channel can take more.
    /// Returns whether something was written (and needs a flush).
    @discardableResult
    func drainOnLoop() -> Bool {
        guard loop.live, !loop.closed, let context = loop.context, context.channel.isWritable, !loop.waiting.isEmpty else {
            return false
        }
        if loop.waiting.count == 1, let frame = loop.waiting.popFirst() {
            loop.waitingBytes = 0
            return writeOnLoop(frame, context: context, recordLag: true)
        }
        var body = context.channel.allocator.buffer(capacity: loop.waitingBytes)
        let now = Date()
        while let frame = loop.waiting.popFirst() {
            if let id = frame.id {
                guard id > loop.lastWritten else { continue }
                loop.lastWritten = id
            }
            body.writeImmutableBuffer(frame.bytes)
            if let at = frame.loggedAt { hooks.lag(max(0, now.timeIntervalSince(at))) }
        }
        loop.waitingBytes = 0
        guard body.readableBytes > 0 else { return false }
        context.write(NIOAny(HTTPResponsePart.body(body)), promise: nil)
        loop.needsFlush = true
        return true
    }

    /// The channel can take more: writes what was waiting while it could not.
    func writabilityChanged() {
        guard loop.live, !loop.closed else { return }
        drainOnLoop()
        flushOnLoop()
        if loop.waiting.isEmpty, shared.withLock({ $0.ended }) { closeOnLoop() }
    }

    func flushOnLoop() {
        guard loop.needsFlush, let context = loop.context else { return }
        loop.needsFlush = false
        context.flush()
    }

    /// The channel went away (client closed, reset or timed out).
    func channelClosed() {
        eventLoop.preconditionInEventLoop()
        shared.withLock { $0.ended = true }
        guard !loop.closed else { return }
        endOnLoop()
    }

    /// Ends the response after writing what waits, and closes the channel:
    /// the client reconnects, with `Last-Event-ID`, wherever it is sent next.
    func closeOnLoop() {
        // Before `start` (the history is still being read) `start` ends the stream once it
        // has written the history, as `ended` is set.
        guard !loop.closed, loop.live, let context = loop.context else { return }
        while let frame = loop.waiting.popFirst() { writeOnLoop(frame, context: context, recordLag: true) }
        endOnLoop()
        Self.endResponse(context)
    }

    /// Gives the stream up at once (a client that stopped reading).
    private func abortOnLoop() {
        guard !loop.closed, let context = loop.context else { return }
        endOnLoop()
        hooks.abort(context.channel)
    }

    /// The one way a stream ends, whichever way it goes: nothing more is written or kept,
    /// no more frames are taken, and the hub lets it go.
    private func endOnLoop() {
        loop.closed = true
        loop.context = nil
        loop.waiting.removeAll()
        loop.waitingBytes = 0
        shared.withLock { $0.ended = true }
        hooks.ended(self)
    }

    /// Ends the HTTP response, then closes its channel (connection or HTTP/2 stream).
    private static func endResponse(_ context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(NIOAny(HTTPResponsePart.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    @discardableResult
    private func writeOnLoop(_ frame: Frame, context: ChannelHandlerContext, recordLag: Bool) -> Bool {
        if let id = frame.id {
            guard id > loop.lastWritten else { return false }
            loop.lastWritten = id
        }
        context.write(NIOAny(HTTPResponsePart.body(frame.bytes)), promise: nil)
        loop.needsFlush = true
        if recordLag, let at = frame.loggedAt { hooks.lag(max(0, Date().timeIntervalSince(at))) }
        return true
    }

}

/// Frames on their way to the subscribers of one event loop. The first frame after the
/// outbox was emptied schedules one task on the loop, which writes every frame handed over
/// until then and flushes each stream once: a dispatch to 10,000 subscribers costs a hop per
/// event loop, not a wake-up per subscriber.
final class Outbox: Sendable {
    let eventLoop: any EventLoop
    private struct State {
        var items: [(Subscriber, Frame)] = []
        var scheduled = false
    }
    private let state = Mutex(State())

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private static let all = Mutex<[ObjectIdentifier: Outbox]>([:])

    /// The one outbox of `eventLoop`.
    static func `for`(_ eventLoop: any EventLoop) -> Outbox {
        all.withLock { all in
            let key = ObjectIdentifier(eventLoop as AnyObject)
            if let outbox = all[key] { return outbox }
            let outbox = Outbox(eventLoop: eventLoop)
            all[key] = outbox
            return outbox
        }
    }

    func send(_ frame: Frame, to subscriber: Subscriber) {
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

/// Holds back the flushes of one HTTP/2 connection while a dispatch writes to its streams,
/// then flushes once. Each stream's flush otherwise reaches the connection: a TLS record and
/// a system call per subscriber, most of the fan-out's time at 10,000 subscribers. Sits
/// between the HTTP/2 handler and TLS, on the connection's event loop.
final class FlushBatcher: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private var holding = false
    private var pending = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func flush(context: ChannelHandlerContext) {
        if holding {
            pending = true
        } else {
            context.flush()
        }
    }

    func hold() { holding = true }

    func release() {
        holding = false
        guard pending, let context else { return }
        pending = false
        context.flush()
    }

    /// The batcher of the HTTP/2 connection `stream` belongs to, added on first use; nil
    /// for an HTTP/1.1 connection. On the connection's event loop.
    static func of(stream: any Channel) -> FlushBatcher? {
        guard let connection = stream.parent, connection.parent != nil else { return nil }
        let pipeline = connection.pipeline.syncOperations
        if let batcher = try? pipeline.handler(type: FlushBatcher.self) { return batcher }
        guard let http2 = try? pipeline.handler(type: NIOHTTP2Handler.self) else { return nil }
        let batcher = FlushBatcher()
        do {
            try pipeline.addHandler(batcher, position: .before(http2))
        } catch {
            return nil
        }
        return batcher
    }
}
