import FanoutCore
import NIOCore
import NIOEmbedded
import Testing

/// The flushes an HTTP/2 connection's batcher lets through to TLS, on an `EmbeddedChannel`.
@Suite struct FlushBatcherTests {
    /// What reaches the connection below the batcher: the bytes of each flush, in order.
    final class FlushLog: ChannelOutboundHandler, @unchecked Sendable {
        // @unchecked: only touched on the embedded event loop, the test's own thread.
        typealias OutboundIn = IOData
        private(set) var flushes: [Int] = []
        private var written = 0

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            written += unwrapOutboundIn(data).readableBytes
            context.write(data, promise: promise)
        }

        func flush(context: ChannelHandlerContext) {
            flushes.append(written)
            written = 0
            context.flush()
        }
    }

    static func connection() throws -> (EmbeddedChannel, FlushBatcher, FlushLog) {
        let channel = EmbeddedChannel()
        let log = FlushLog()
        let batcher = FlushBatcher()
        try channel.pipeline.syncOperations.addHandler(log)
        try channel.pipeline.syncOperations.addHandler(batcher)
        return (channel, batcher, log)
    }

    /// As a pass writes `count` streams of `bytes` each, every stream flushing itself.
    static func writeStreams(_ channel: EmbeddedChannel, count: Int, bytes: Int) {
        for _ in 0..<count {
            channel.write(ByteBuffer(repeating: 0x61, count: bytes), promise: nil)
            channel.flush()
        }
    }

    @Test func heldFlushesGoThroughInPiecesNoLargerThanTheBound() throws {
        let (channel, batcher, log) = try Self.connection()
        batcher.hold()
        Self.writeStreams(channel, count: 40, bytes: 1000)
        batcher.release()
        #expect(log.flushes.reduce(0, +) == 40_000, "everything written was flushed")
        #expect(log.flushes.allSatisfy { $0 <= FlushBatcher.flushBytes }, "\(log.flushes)")
        #expect(log.flushes.count == 4, "12 streams per flush, the rest at release: \(log.flushes)")
        _ = try channel.finish()
    }

    @Test func aSmallDispatchIsStillOneFlushAndUnheldFlushesPassAtOnce() throws {
        let (channel, batcher, log) = try Self.connection()
        batcher.hold()
        Self.writeStreams(channel, count: 5, bytes: 1000)
        #expect(log.flushes.isEmpty, "held")
        batcher.release()
        #expect(log.flushes == [5000])
        Self.writeStreams(channel, count: 2, bytes: 300)
        #expect(log.flushes == [5000, 300, 300])
        _ = try channel.finish()
    }

    @Test func oneWriteLargerThanTheBoundIsNotSplit() throws {
        let (channel, batcher, log) = try Self.connection()
        batcher.hold()
        Self.writeStreams(channel, count: 1, bytes: 500)
        Self.writeStreams(channel, count: 1, bytes: 20_000)
        batcher.release()
        #expect(log.flushes == [500, 20_000])
        _ = try channel.finish()
    }
}
