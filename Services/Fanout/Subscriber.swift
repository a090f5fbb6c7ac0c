import FanoutCore
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP2
import NIOHTTPTypes
import Shared
import Synchronization

/// One piece of a stream: an event from the log (with its id, commit time and conflation
/// key) or a comment.
typealias Frame = StreamFrame

extension StreamFrame {
    static func comment(_ text: String) -> StreamFrame {
        StreamFrame(id: nil, bytes: ServerSentEvent.comment(text))
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
/// What happens to the stream is decided by its `StreamStateMachine` (states, backlog,
/// conflation, when to cut); this class only performs the machine's actions on the channel.
final class Subscriber: @unchecked Sendable {
    // @unchecked: `shared` is the only state touched off the event loop; `loop` is only
    // read and written on `eventLoop` (everything under "On the event loop" runs there, and
    // `push` and `finish` hop to it).
    let id: Int
    let topics: [String]
    let transport: String
    let expiresAt: Date?
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
        var machine: StreamStateMachine
        var context: ChannelHandlerContext?
        var needsFlush = false
        /// The hub let the stream go: nothing more is written.
        var released = false
        /// Its HTTP/2 connection's flush batcher (nil over HTTP/1.1).
        var batcher: FlushBatcher?
        /// A write into the channel is under way: a writability change it causes is left to
        /// the writer, which looks at the channel again when the write returns. Writing from
        /// inside it would put a chunk between the pieces the HTTP/1.1 encoder writes for
        /// one body part (size, bytes, CRLF) and break the response's framing.
        var writing = false
    }
    private var loop: Loop

    /// What the stream reports back: delivery lag, a slow consumer cut off, conflation, why it ends, its end.
    struct Hooks: Sendable {
        var lag: @Sendable (TimeInterval) -> Void
        var slowConsumer: @Sendable (StreamStateMachine.AbortReason) -> Void
        /// Events conflation dropped for a reader that was behind.
        var coalesced: @Sendable (Int) -> Void
        /// Once, from `finish`, with the reason (before the close it leads to).
        var finishing: @Sendable (StreamEnd) -> Void
        var ended: @Sendable (Subscriber) -> Void
        /// Ends the connection under a client that stopped reading (a reset for HTTP/1.1).
        var abort: @Sendable (any Channel) -> Void
    }

    init(
        id: Int, topics: [String], transport: String, expiresAt: Date?, limits: StreamStateMachine.Limits,
        eventLoop: any EventLoop, hooks: Hooks
    ) {
        self.id = id
        self.topics = topics
        self.transport = transport
        self.expiresAt = expiresAt
        self.eventLoop = eventLoop
        self.outbox = Outbox.for(eventLoop)
        self.hooks = hooks
        loop = Loop(machine: StreamStateMachine(limits: limits))
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
            self.perform(self.loop.machine.finish(final: final))
            self.flushOnLoop()
        }
    }

    // MARK: On the event loop

    /// The stream's channel is ready for frames: `context` is the handler that writes them.
    func attach(_ context: ChannelHandlerContext) {
        eventLoop.preconditionInEventLoop()
        loop.context = context
        loop.batcher = FlushBatcher.of(stream: context.channel)
        loop.machine.attached()
    }

    /// The connection's batcher, while the stream runs.
    var batcherOnLoop: FlushBatcher? { loop.released ? nil : loop.batcher }

    /// Writes the response head and the history, then goes live with whatever arrived
    /// meanwhile (events at or before the history's last id are dropped by id).
    func start(head: HTTPResponse, preamble: ByteBuffer, history: [Frame], after: Int64) {
        eventLoop.preconditionInEventLoop()
        guard let context = loop.context else { return }
        switch loop.machine.historyLoaded(history, after: after) {
        case .start(let frames):
            writeHead(head, preamble: preamble, context: context)
            write(frames, context: context, recordLag: false)
            writeWhileWritable(context: context)
            flushOnLoop()
        case .writeAndEnd(let frames, _):
            writeHead(head, preamble: preamble, context: context)
            write(frames, context: context, recordLag: false)
            release()
            Self.endResponse(context)
        default:
            return
        }
    }

    /// Answers with a problem instead of a stream (its history could not be read) and closes.
    func refuse(_ status: HTTPResponse.Status, _ rendered: (headers: HTTPFields, body: ByteBuffer)?) {
        eventLoop.preconditionInEventLoop()
        guard let context = loop.context, case .refuse = loop.machine.historyFailed() else { return }
        release()
        context.write(NIOAny(HTTPResponsePart.head(HTTPResponse(status: status, headerFields: rendered?.headers ?? [:]))), promise: nil)
        if let body = rendered?.body { context.write(NIOAny(HTTPResponsePart.body(body)), promise: nil) }
        Self.endResponse(context)
    }

    /// Takes a frame on the loop, behind what waits (conflated past its threshold), or cuts
    /// the stream. Returns whether `drainOnLoop` may have something to write.
    func stageOnLoop(_ frame: Frame) -> Bool {
        guard !loop.released else { return false }
        let action = loop.machine.enqueue(frame)
        let coalesced = loop.machine.takeCoalesced()
        if coalesced > 0 { hooks.coalesced(coalesced) }
        perform(action)
        return loop.machine.hasWaiting
    }

    /// Writes what waits, a chunk (one body part) at a time, while the channel takes it:
    /// a backlog costs a pass through the HTTP encoder per chunk, not per event. Returns
    /// whether something was written (and needs a flush).
    @discardableResult
    func drainOnLoop() -> Bool {
        guard !loop.released, let context = loop.context else { return false }
        return writeWhileWritable(context: context)
    }

    /// The channel's writability changed: once it takes more, what waited goes to it.
    func writabilityChanged() {
        guard !loop.released, !loop.writing, let context = loop.context else { return }
        writeWhileWritable(context: context)
        flushOnLoop()
    }

    func flushOnLoop() {
        guard loop.needsFlush, let context = loop.context else { return }
        loop.needsFlush = false
        context.flush()
    }

    /// The channel went away (client closed, reset or timed out, or the end was written).
    func channelClosed() {
        eventLoop.preconditionInEventLoop()
        shared.withLock { $0.ended = true }
        _ = loop.machine.channelClosed()
        release()
    }

    // MARK: Private

    /// Performs one of the machine's actions.
    private func perform(_ action: StreamStateMachine.Action) {
        guard !loop.released, let context = loop.context else { return }
        switch action {
        case .none, .start, .refuse:
            return
        case .write(let frames):
            write(frames, context: context, recordLag: true)
        case .writeAndEnd(let frames, _):
            write(frames, context: context, recordLag: true)
            release()
            Self.endResponse(context)
        case .abort(let reason):
            hooks.slowConsumer(reason)
            release()
            hooks.abort(context.channel)
        }
    }

    /// Writes the next chunks of the backlog while the channel takes more. Returns whether
    /// something was written.
    @discardableResult
    private func writeWhileWritable(context: ChannelHandlerContext) -> Bool {
        var wrote = false
        while !loop.released, context.channel.isWritable, loop.machine.hasWaiting {
            guard case .write(let frames) = loop.machine.writabilityChanged(true) else { break }
            wrote = write(frames, context: context, recordLag: true) || wrote
        }
        return wrote
    }

    private func writeHead(_ head: HTTPResponse, preamble: ByteBuffer, context: ChannelHandlerContext) {
        loop.writing = true
        context.write(NIOAny(HTTPResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPResponsePart.body(preamble)), promise: nil)
        loop.writing = false
        loop.needsFlush = true
    }

    /// Writes `frames` as one body part. Returns whether there was anything to write.
    @discardableResult
    private func write(_ frames: [StreamFrame], context: ChannelHandlerContext, recordLag: Bool) -> Bool {
        guard let first = frames.first else { return false }
        let body: ByteBuffer
        if frames.count == 1 {
            body = first.bytes
        } else {
            var joined = context.channel.allocator.buffer(capacity: frames.reduce(0) { $0 + $1.bytes.readableBytes })
            for frame in frames { joined.writeImmutableBuffer(frame.bytes) }
            body = joined
        }
        loop.writing = true
        context.write(NIOAny(HTTPResponsePart.body(body)), promise: nil)
        loop.writing = false
        loop.needsFlush = true
        if recordLag {
            let now = Date()
            for frame in frames { if let at = frame.loggedAt { hooks.lag(max(0, now.timeIntervalSince(at))) } }
        }
        return true
    }

    /// The one way a stream ends, whichever way it goes: nothing more is written or kept,
    /// no more frames are taken, and the hub lets it go. Once.
    private func release() {
        guard !loop.released else { return }
        loop.released = true
        loop.context = nil
        shared.withLock { $0.ended = true }
        hooks.ended(self)
    }

    /// Ends the HTTP response, then closes its channel (connection or HTTP/2 stream).
    private static func endResponse(_ context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(NIOAny(HTTPResponsePart.end(nil))).whenComplete { _ in channel.close(promise: nil) }
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
