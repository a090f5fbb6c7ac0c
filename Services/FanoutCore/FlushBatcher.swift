import NIOCore
import NIOHTTP2
import NIOHTTPTypesHTTP2

/// Holds back the flushes of one HTTP/2 connection while a dispatch writes to its streams,
/// then flushes once. Each stream's flush otherwise reaches the connection: a TLS record and
/// a system call per subscriber, most of the fan-out's time at 10,000 subscribers. Sits
/// between the HTTP/2 handler and TLS, on the connection's event loop.
///
/// While holding it still flushes whenever `flushBytes` would be passed, so TLS never
/// encrypts more than that in one flush. swift-nio-ssl keeps its ciphertext buffer at the
/// size of the largest flush for the life of the connection (it ignores its
/// `maximumPreservedOutboundBufferCapacity`): one event for 100 streams in one flush left
/// 64 KiB on every connection, about 0.65 KiB per subscriber.
public final class FlushBatcher: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = IOData
    public typealias OutboundOut = IOData

    /// At most this much plaintext per flush while holding (unless one write is larger):
    /// with the TLS records' overhead it fits the ciphertext buffer TLS starts with (16 KiB).
    public static let flushBytes = 12 * 1024

    /// The connection's streams the current pass of its event loop writes (see `Outbox`).
    var passStreams: [Subscriber] = []

    private var holding = false
    private var pending = false
    /// Written since the last flush that went through.
    private var unflushedBytes = 0
    private var context: ChannelHandlerContext?

    public init() {}

    public func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    public func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data).readableBytes
        if holding, unflushedBytes > 0, unflushedBytes + bytes > Self.flushBytes {
            context.flush()
            unflushedBytes = 0
        }
        unflushedBytes += bytes
        context.write(data, promise: promise)
    }

    public func flush(context: ChannelHandlerContext) {
        if holding {
            pending = true
        } else {
            unflushedBytes = 0
            context.flush()
        }
    }

    public func hold() { holding = true }

    public func release() {
        holding = false
        guard pending, let context else { return }
        pending = false
        unflushedBytes = 0
        context.flush()
    }

    /// The batcher of the HTTP/2 connection `stream` belongs to, added on first use; nil
    /// for an HTTP/1.1 connection. On the connection's event loop.
    public static func of(stream: any Channel) -> FlushBatcher? {
        // An HTTP/2 stream's pipeline has the HTTP/2 codec; an HTTP/1.1 connection's parent is
        // the listening socket, whose pipeline belongs to another event loop.
        guard (try? stream.pipeline.syncOperations.handler(type: HTTP2FramePayloadToHTTPServerCodec.self)) != nil,
            let connection = stream.parent
        else { return nil }
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
