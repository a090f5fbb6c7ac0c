import FanoutCore
import Foundation
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

/// Stands where the fan-out's `EventStreamHandler` stands once it took a request as a
/// stream: it hands its context to a `Subscriber` and passes it the channel's writability
/// changes and its close.
final class StreamTestHandler: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked: only touched on the embedded event loop, the test's own thread.
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private(set) var context: ChannelHandlerContext?
    private(set) var requestHeads = 0
    var subscriber: Subscriber?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { requestHeads += 1 }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        subscriber?.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        subscriber?.channelClosed()
        context.fireChannelInactive()
    }
}

extension Subscriber {
    /// A stream gone live on `handler`'s channel: registered at 0, attached, its head and
    /// preamble written (as `FanoutStream.open` leaves a stream with no history to read).
    static func live(
        id: Int, transport: String, limits: StreamStateMachine.Limits, on handler: StreamTestHandler, hooks: Hooks,
        connection: ObjectIdentifier? = nil
    ) throws -> Subscriber {
        let context = try #require(handler.context)
        let subscriber = Subscriber(
            id: id, topics: ["availability"], transport: transport, expiresAt: nil, limits: limits, eventLoop: context.eventLoop,
            connection: connection, hooks: hooks)
        handler.subscriber = subscriber
        subscriber.registered(at: 0)
        subscriber.attach(context)
        subscriber.start(
            head: HTTPResponse(status: .ok, headerFields: [.contentType: "text/event-stream"]),
            preamble: ByteBuffer(string: "retry: 2000\n\n"), history: [], after: 0)
        return subscriber
    }
}

/// What a subscriber's hooks were called with.
final class HookRecorder: @unchecked Sendable {
    // @unchecked: only touched on the embedded event loop, which is the test's own thread.
    private(set) var cuts: [StreamStateMachine.AbortReason] = []
    private(set) var coalesced = 0
    private(set) var finishing: [StreamEnd] = []
    private(set) var ended = 0
    private(set) var lags: [TimeInterval] = []

    var hooks: Subscriber.Hooks {
        Subscriber.Hooks(
            lag: { self.lags.append($0) },
            slowConsumer: { self.cuts.append($0) },
            coalesced: { self.coalesced += $0 },
            finishing: { self.finishing.append($0) },
            ended: { _ in self.ended += 1 },
            abort: { $0.close(promise: nil) }
        )
    }
}

/// Counts the flushes that reach the connection (first in the pipeline, next to the socket).
final class FlushCounter: ChannelOutboundHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData
    private(set) var flushes = 0

    func flush(context: ChannelHandlerContext) {
        flushes += 1
        context.flush()
    }

    func reset() { flushes = 0 }
}

/// Acts as the socket does: once more than `high` bytes wait unflushed the channel turns
/// unwritable, inside the write that passed it; a flush sends everything and turns it
/// writable again, inside the flush, as NIO's socket channels do.
final class WatermarkHandler: ChannelOutboundHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData
    private let high: Int
    private var pending = 0

    init(high: Int) { self.high = high }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        pending += unwrapOutboundIn(data).readableBytes
        context.write(data, promise: promise)
        if pending > high, let channel = context.channel as? EmbeddedChannel, channel.isWritable {
            channel.isWritable = false
            context.pipeline.fireChannelWritabilityChanged()
        }
    }

    func flush(context: ChannelHandlerContext) {
        context.flush()
        pending = 0
        if let channel = context.channel as? EmbeddedChannel, !channel.isWritable {
            channel.isWritable = true
            context.pipeline.fireChannelWritabilityChanged()
        }
    }
}

extension IOData {
    var readableBytes: Int {
        switch self {
        case .byteBuffer(let buffer): buffer.readableBytes
        case .fileRegion(let region): region.readableBytes
        }
    }
}

extension EmbeddedChannel {
    /// Everything flushed to the socket so far, as one buffer.
    func flushedBytes() throws -> ByteBuffer {
        var all = ByteBuffer()
        while let data = try readOutbound(as: IOData.self) {
            guard case .byteBuffer(var buffer) = data else { continue }
            all.writeBuffer(&buffer)
        }
        return all
    }
}
