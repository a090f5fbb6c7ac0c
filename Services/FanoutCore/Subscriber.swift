import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOHTTPTypes
import NIOHTTPTypesHTTP2
import Synchronization

/// One open stream, written straight into its channel on the channel's event loop: no task
/// and no async writer per subscriber. Frames pushed from any thread wait in its inbox for
/// the event loop's `Outbox`, so one dispatch reaches all of a loop's subscribers in one hop.
///
/// Over HTTP/1.1 the body is written below the HTTP encoder, as the chunks each frame
/// carries ready-made (`StreamFrame.chunk`): the head goes through the encoder, which makes
/// the response chunked, and every delivery after it is one buffer, shared with every other
/// stream that gets the event, with no HTTP encoding of its own.
///
/// What happens to the stream is decided by its `StreamStateMachine` (states, backlog,
/// conflation, when to cut); this class only performs the machine's actions on the channel.
public final class Subscriber: @unchecked Sendable {
    // @unchecked: `shared` is the only state touched off the event loop; `loop` is only
    // read and written on `eventLoop` (everything under "On the event loop" runs there, and
    // `push` and `finish` hop to it).
    public let id: Int
    public let topics: [String]
    public let transport: String
    public let expiresAt: Date?
    public let eventLoop: any EventLoop
    /// The HTTP/2 connection the stream is on (nil over HTTP/1.1): a dispatch hands a
    /// connection's streams to their loop together (see `FrameDispatch`).
    public let connection: ObjectIdentifier?
    let outbox: Outbox
    private let hooks: Hooks

    /// What the dispatcher's threads check before handing a frame over, and the frames
    /// handed over that the next pass takes.
    private struct Shared {
        var lastQueuedID: Int64 = 0
        var ended = false
        var inbox: [StreamFrame] = []
    }
    private let shared = Mutex(Shared())

    /// Owned by the event loop.
    private struct Loop {
        var machine: StreamStateMachine
        var context: ChannelHandlerContext?
        var channel: (any Channel)?
        /// Over HTTP/1.1, the HTTP encoder's context: body chunks are written through it, below
        /// the encoder.
        var chunkWriter: ChannelHandlerContext?
        /// Over HTTP/2, the HTTP/2 codec's context: body bytes are written through it as DATA
        /// payloads, as the codec would make them, without a conversion per delivery.
        var dataWriter: ChannelHandlerContext?
        /// The inbox last taken, swapped with the shared one each pass and kept for its
        /// capacity (a pass allocates nothing) unless a burst made it large.
        var taken: [StreamFrame] = []
        var needsFlush = false
        /// The hub let the stream go: nothing more is written.
        var released = false
        /// Its HTTP/2 connection's flush batcher (nil over HTTP/1.1).
        var batcher: FlushBatcher?
        /// The channel's writability, as its pipeline last told it (`writabilityChanged`):
        /// read from here, not from the channel's atomic, on every delivery.
        var writable = false
        /// A write into the channel is under way: a writability change it causes is left to
        /// the writer, which looks at the channel again when the write returns. Writing from
        /// inside it would put a chunk between the pieces the HTTP/1.1 encoder writes for
        /// one body part (size, bytes, CRLF) and break the response's framing.
        var writing = false
    }
    private var loop: Loop

    /// What the stream reports back: delivery lag, a slow consumer cut off, conflation, why it ends, its end.
    public struct Hooks: Sendable {
        public var lag: @Sendable (TimeInterval) -> Void
        public var slowConsumer: @Sendable (StreamStateMachine.AbortReason) -> Void
        /// Events conflation dropped for a reader that was behind.
        public var coalesced: @Sendable (Int) -> Void
        /// Once, from `finish`, with the reason (before the close it leads to).
        public var finishing: @Sendable (StreamEnd) -> Void
        public var ended: @Sendable (Subscriber) -> Void
        /// Ends the connection under a client that stopped reading (a reset for HTTP/1.1).
        public var abort: @Sendable (any Channel) -> Void

        public init(
            lag: @escaping @Sendable (TimeInterval) -> Void, slowConsumer: @escaping @Sendable (StreamStateMachine.AbortReason) -> Void,
            coalesced: @escaping @Sendable (Int) -> Void, finishing: @escaping @Sendable (StreamEnd) -> Void,
            ended: @escaping @Sendable (Subscriber) -> Void, abort: @escaping @Sendable (any Channel) -> Void
        ) {
            self.lag = lag
            self.slowConsumer = slowConsumer
            self.coalesced = coalesced
            self.finishing = finishing
            self.ended = ended
            self.abort = abort
        }
    }

    public init(
        id: Int, topics: [String], transport: String, expiresAt: Date?, limits: StreamStateMachine.Limits,
        eventLoop: any EventLoop, connection: ObjectIdentifier? = nil, hooks: Hooks
    ) {
        self.id = id
        self.topics = topics
        self.transport = transport
        self.expiresAt = expiresAt
        self.eventLoop = eventLoop
        self.connection = connection
        self.outbox = Outbox.for(eventLoop)
        self.hooks = hooks
        loop = Loop(machine: StreamStateMachine(limits: limits))
    }

    /// The newest event id handed to this stream: live, or the head it was registered at.
    public var lastQueuedID: Int64 { shared.withLock { $0.lastQueuedID } }

    /// Registered at `head`: every event up to it is the history's (or was already had).
    public func registered(at head: Int64) {
        shared.withLock { $0.lastQueuedID = max($0.lastQueuedID, head) }
    }

    /// Hands a frame to the stream from any thread. An event id at or below the last one
    /// handed over is a duplicate (the subscriber follows several of the event's topics)
    /// and is dropped; so is anything after the stream ended. Returns whether it was taken.
    @discardableResult
    public func push(_ frame: StreamFrame) -> Bool {
        var dispatch = FrameDispatch()
        defer { dispatch.send() }
        return dispatch.push(frame, to: self)
    }

    enum Taken {
        case dropped, queued
        /// Queued in an empty inbox: the subscriber goes to its outbox's next pass.
        case wakes
    }

    /// Puts a frame in the inbox (see `push`).
    func take(_ frame: StreamFrame) -> Taken {
        shared.withLock { shared in
            guard !shared.ended else { return .dropped }
            if let id = frame.id {
                guard id > shared.lastQueuedID else { return .dropped }
                shared.lastQueuedID = id
            }
            shared.inbox.append(frame)
            return shared.inbox.count == 1 ? .wakes : .queued
        }
    }

    /// Ends the stream after what is waiting, with `final` written last (counted by reason
    /// in `vacancy_fanout_streams_ended_total`).
    public func finish(_ reason: StreamEnd, final: StreamFrame? = nil) {
        let first = shared.withLock { shared in
            defer { shared.ended = true }
            return !shared.ended
        }
        guard first else { return }
        hooks.finishing(reason)
        eventLoop.execute {
            // What was handed over before the end goes first.
            self.deliverOnLoop(now: .now())
            self.perform(self.loop.machine.finish(final: final))
            self.flushOnLoop()
        }
    }

    // MARK: On the event loop

    /// The stream's channel is ready for frames: `context` is the handler that writes them.
    public func attach(_ context: ChannelHandlerContext) {
        eventLoop.preconditionInEventLoop()
        loop.context = context
        loop.channel = context.channel
        loop.batcher = FlushBatcher.of(stream: context.channel)
        loop.chunkWriter = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
        loop.dataWriter = try? context.pipeline.syncOperations.context(handlerType: HTTP2FramePayloadToHTTPServerCodec.self)
        loop.writable = context.channel.isWritable
        loop.machine.attached()
    }

    /// The connection's batcher, while the stream runs.
    public var batcherOnLoop: FlushBatcher? { loop.released ? nil : loop.batcher }

    /// Writes the response head and the history, then goes live with whatever arrived
    /// meanwhile (events at or before the history's last id are dropped by id).
    public func start(head: HTTPResponse, preamble: ByteBuffer, history: [StreamFrame], after: Int64) {
        eventLoop.preconditionInEventLoop()
        guard let context = loop.context else { return }
        var head = head
        // The body is written as chunks below the encoder: the head says so.
        if loop.chunkWriter != nil { head.headerFields[.transferEncoding] = "chunked" }
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
    public func refuse(_ status: HTTPResponse.Status, _ rendered: (headers: HTTPFields, body: ByteBuffer)?) {
        eventLoop.preconditionInEventLoop()
        guard let context = loop.context, case .refuse = loop.machine.historyFailed() else { return }
        release()
        context.write(NIOAny(HTTPResponsePart.head(HTTPResponse(status: status, headerFields: rendered?.headers ?? [:]))), promise: nil)
        if let body = rendered?.body { context.write(NIOAny(HTTPResponsePart.body(body)), promise: nil) }
        Self.endResponse(context)
    }

    /// An inbox that grew past this many frames (a burst) gives its storage back once taken.
    static let keptInboxCapacity = 16

    /// Frames both halves of the inbox can hold without allocating. On the event loop.
    var inboxCapacity: Int { shared.withLock { $0.inbox.capacity } + loop.taken.capacity }

    /// Takes what the inbox holds and hands it to the machine, performs what it says (written
    /// at once, chunked behind what waits, conflated, or a cut), writes on while the channel
    /// takes more, and flushes. Called once per pass (and before an end).
    func deliverOnLoop(now: NIODeadline) {
        shared.withLock { shared in swap(&shared.inbox, &loop.taken) }
        defer { loop.taken.removeAll(keepingCapacity: loop.taken.capacity <= Self.keptInboxCapacity) }
        guard !loop.released, !loop.taken.isEmpty else { return }
        // Before the channel is attached (or while the history is read) the machine keeps them.
        let action = loop.machine.receive(loop.taken, writable: loop.channel != nil && loop.writable, now: now)
        let coalesced = loop.machine.takeCoalesced()
        if coalesced > 0 { hooks.coalesced(coalesced) }
        perform(action)
        if !loop.released, let context = loop.context { writeWhileWritable(context: context, now: now) }
        flushOnLoop()
    }

    /// The channel's writability changed (its pipeline says so, for every change): once it
    /// takes more, what waited goes to it.
    public func writabilityChanged() {
        guard !loop.released, let channel = loop.channel else { return }
        loop.writable = channel.isWritable
        guard !loop.writing, let context = loop.context else { return }
        writeWhileWritable(context: context)
        flushOnLoop()
    }

    public func flushOnLoop() {
        guard loop.needsFlush, let context = loop.context else { return }
        loop.needsFlush = false
        (loop.chunkWriter ?? loop.dataWriter ?? context).flush()
    }

    /// The channel went away (client closed, reset or timed out, or the end was written).
    public func channelClosed() {
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

    /// Writes the next chunks of the backlog while the channel takes more, then tells the
    /// machine when the channel is left taking nothing (the stall clock starts). Returns
    /// whether something was written.
    @discardableResult
    private func writeWhileWritable(context: ChannelHandlerContext, now: NIODeadline = .now()) -> Bool {
        var wrote = false
        while !loop.released, loop.machine.hasWaiting, loop.writable {
            guard case .write(let frames) = loop.machine.writabilityChanged(true, now: now) else { break }
            wrote = write(frames, context: context, recordLag: true) || wrote
        }
        if !loop.released, !loop.writable { perform(loop.machine.writabilityChanged(false, now: now)) }
        return wrote
    }

    private func writeHead(_ head: HTTPResponse, preamble: ByteBuffer, context: ChannelHandlerContext) {
        loop.writing = true
        context.write(NIOAny(HTTPResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPResponsePart.body(preamble)), promise: nil)
        loop.writing = false
        loop.needsFlush = true
    }

    /// Writes `frames` as one body part (over HTTP/1.1, one chunk per frame, below the
    /// encoder). Returns whether there was anything to write.
    @discardableResult
    private func write(_ frames: [StreamFrame], context: ChannelHandlerContext, recordLag: Bool) -> Bool {
        guard let first = frames.first else { return false }
        loop.writing = true
        if let writer = loop.chunkWriter {
            writer.write(NIOAny(IOData.byteBuffer(frames.count == 1 ? first.chunk : Self.joined(frames, \.chunk, context))), promise: nil)
        } else if let writer = loop.dataWriter {
            let body = frames.count == 1 ? first.bytes : Self.joined(frames, \.bytes, context)
            writer.write(NIOAny(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(body)))), promise: nil)
        } else {
            let body = frames.count == 1 ? first.bytes : Self.joined(frames, \.bytes, context)
            context.write(NIOAny(HTTPResponsePart.body(body)), promise: nil)
        }
        loop.writing = false
        loop.needsFlush = true
        if recordLag { outbox.lags.wrote(frames, hook: hooks.lag) }
        return true
    }

    private static func joined(_ frames: [StreamFrame], _ part: KeyPath<StreamFrame, ByteBuffer>, _ context: ChannelHandlerContext)
        -> ByteBuffer
    {
        var joined = context.channel.allocator.buffer(capacity: frames.reduce(0) { $0 + $1[keyPath: part].readableBytes })
        for frame in frames { joined.writeImmutableBuffer(frame[keyPath: part]) }
        return joined
    }

    /// The one way a stream ends, whichever way it goes: nothing more is written or kept,
    /// no more frames are taken, and the hub lets it go. Once.
    private func release() {
        guard !loop.released else { return }
        loop.released = true
        loop.context = nil
        loop.chunkWriter = nil
        loop.dataWriter = nil
        loop.channel = nil
        shared.withLock { shared in
            shared.ended = true
            shared.inbox = []
        }
        hooks.ended(self)
    }

    /// Ends the HTTP response, then closes its channel (connection or HTTP/2 stream).
    private static func endResponse(_ context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(NIOAny(HTTPResponsePart.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
