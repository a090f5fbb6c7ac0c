import Foundation
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Testing

@testable import FanoutCore

/// A stream over HTTP/1.1 through the real encoder, on an `EmbeddedChannel`: what reaches the
/// socket, chunk by chunk, as the channel takes more or stops taking anything.
@Suite struct SubscriberHTTP1Tests {
    struct Stream {
        let channel: EmbeddedChannel
        let subscriber: Subscriber
        let recorder: HookRecorder
        let handler: StreamTestHandler

        /// Runs what the outbox scheduled (one dispatch).
        func dispatch() { channel.embeddedEventLoop.run() }

        func setWritable(_ writable: Bool) {
            channel.isWritable = writable
            channel.pipeline.fireChannelWritabilityChanged()
        }
    }

    /// A live stream (head and preamble written); `watermark`: the socket turns unwritable past it.
    static func open(
        _ limits: StreamStateMachine.Limits, watermark: Int? = nil, on loop: EmbeddedEventLoop? = nil, connection: ObjectIdentifier? = nil
    ) throws -> Stream {
        let channel = EmbeddedChannel(loop: loop ?? EmbeddedEventLoop())
        let handler = StreamTestHandler()
        let sync = channel.pipeline.syncOperations
        if let watermark { try sync.addHandler(WatermarkHandler(high: watermark)) }
        try sync.addHandler(HTTPResponseEncoder())
        try sync.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        try sync.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8083)).wait()
        let recorder = HookRecorder()
        let subscriber = try Subscriber.live(
            id: 1, transport: "http1", limits: limits, on: handler, hooks: recorder.hooks, connection: connection)
        return Stream(channel: channel, subscriber: subscriber, recorder: recorder, handler: handler)
    }

    static func event(_ id: Int64, session: String? = nil, padding: Int = 80) -> StreamFrame {
        let data = #"{"session":"\#(session ?? "-")","pad":"\#(String(repeating: "x", count: padding))"}"#
        return StreamFrame(
            id: id, bytes: ByteBuffer(string: "id: \(id)\nevent: availability.updated\ndata: \(data)\n\n"),
            conflationKey: session.map { "availability.session.\($0)" })
    }

    @Test func aBacklogGoesOutAChunkAtATimeAsTheSocketTakesItAndEveryChunkIsWellFramed() throws {
        // The socket turns unwritable past 1.5 KiB inside the write that passed it, and
        // writable again inside the flush: a chunk written from inside either would land
        // between the pieces of the chunk being encoded.
        let stream = try Self.open(.init(maximumFrames: 1000, maximumBytes: 1 << 20, writeChunkBytes: 1024), watermark: 1536)
        for id in 1...100 { stream.subscriber.push(Self.event(Int64(id))) }
        stream.dispatch()
        let response = try ChunkedResponse(try stream.channel.flushedBytes())
        #expect(response.head.hasPrefix("HTTP/1.1 200 OK"))
        #expect(response.eventIDs == Array(1...100), "every event, once, in order")
        // About 14 KB in chunks of at most 1 KiB (the preamble is a chunk of its own).
        #expect(response.chunks.count > 10)
        #expect(response.chunks.allSatisfy { $0.utf8.count <= 1024 })
        #expect(!response.ended)
        #expect(stream.recorder.cuts.isEmpty)
    }

    @Test func whileTheSocketTakesNothingAvailabilityIsConflatedToTheNewestOfEachSession() throws {
        let stream = try Self.open(.init(maximumFrames: 50, maximumBytes: 1 << 20, conflateAtFrames: 10))
        _ = try stream.channel.flushedBytes()  // the head
        stream.setWritable(false)
        let sessions = ["a", "b", "c"]
        for id in 1...300 { stream.subscriber.push(Self.event(Int64(id), session: sessions[id % 3])) }
        stream.dispatch()
        #expect(try stream.channel.flushedBytes().readableBytes == 0, "nothing goes to a socket that takes nothing")
        stream.setWritable(true)
        var rest = try stream.channel.flushedBytes()
        var prefixed = ByteBuffer(string: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        prefixed.writeBuffer(&rest)
        let ids = try ChunkedResponse(prefixed).eventIDs
        #expect(ids == ids.sorted() && Set(ids).count == ids.count, "ids stay strictly increasing")
        #expect(Array(ids.suffix(3)) == [298, 299, 300], "the newest of each session is there")
        #expect(ids.count < 300)
        #expect(stream.recorder.coalesced == 300 - ids.count, "every event not written is counted as coalesced")
        #expect(stream.recorder.cuts.isEmpty, "conflated, not cut")
        #expect(stream.channel.isActive)
    }

    @Test func eachDeliveryIsTheFramesOwnChunkWrittenBelowTheEncoderAsOneBuffer() throws {
        let stream = try Self.open(.init(maximumFrames: 1000, maximumBytes: 1 << 20))
        let head = try ChunkedResponse(try stream.channel.flushedBytes())
        #expect(head.head.lowercased().contains("transfer-encoding: chunked"), "the head says the body is chunked")
        let frame = Self.event(1)
        stream.subscriber.push(frame)
        stream.dispatch()
        var written: [ByteBuffer] = []
        while case .byteBuffer(let buffer) = try stream.channel.readOutbound(as: IOData.self) { written.append(buffer) }
        #expect(written == [frame.chunk], "one write, the chunk every subscriber shares, not a size line, bytes and CRLF")
        let size = frame.bytes.readableBytes
        #expect(String(buffer: frame.chunk) == String(size, radix: 16) + "\r\n" + String(buffer: frame.bytes) + "\r\n")
    }

    @Test func eachEventLoopWritesItsOwnCopyOfAFrame() throws {
        // Two channels, each on an event loop of its own.
        let first = try Self.open(.init(maximumFrames: 100, maximumBytes: 1 << 20))
        let second = try Self.open(.init(maximumFrames: 100, maximumBytes: 1 << 20))
        _ = try first.channel.flushedBytes()
        _ = try second.channel.flushedBytes()
        let frame = Self.event(1)
        var dispatch = FrameDispatch()
        let taken = (dispatch.push(frame, to: first.subscriber), dispatch.push(frame, to: second.subscriber))
        #expect(taken == (true, true))
        dispatch.send()
        first.dispatch()
        second.dispatch()
        func written(_ stream: Stream) throws -> ByteBuffer? {
            guard case .byteBuffer(let buffer) = try stream.channel.readOutbound(as: IOData.self) else { return nil }
            return buffer
        }
        func address(_ buffer: ByteBuffer) -> UInt { buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } }
        let one = try #require(try written(first))
        let two = try #require(try written(second))
        #expect(one == frame.chunk && two == frame.chunk, "the same bytes on both")
        #expect(address(one) == address(frame.chunk), "the first loop writes the frame itself")
        #expect(address(two) != address(frame.chunk), "the second writes a copy in storage of its own")
    }

    /// Dispatches one event to `streams` (all on `loop`): which of them the loop wrote before
    /// the dispatch's `send()`, and which after it.
    static func dispatchOneEvent(to streams: [Stream], on loop: EmbeddedEventLoop) throws -> (early: [Bool], late: [Bool]) {
        for stream in streams { _ = try stream.channel.flushedBytes() }
        var dispatch = FrameDispatch()
        let frame = Self.event(1)
        let taken = streams.filter { dispatch.push(frame, to: $0.subscriber) }
        #expect(taken.count == streams.count)
        loop.run()
        let early = try streams.map { try $0.channel.flushedBytes().readableBytes > 0 }
        dispatch.send()
        loop.run()
        let late = try streams.map { try $0.channel.flushedBytes().readableBytes > 0 }
        return (early, late)
    }

    @Test func aDispatchHandsHTTP1StreamsToTheirLoopBeforeItEnds() throws {
        let loop = EmbeddedEventLoop()
        let streams = try (0..<FrameDispatch.wakeBatch + 10).map { _ in
            try Self.open(.init(maximumFrames: 100, maximumBytes: 1 << 20), on: loop)
        }
        let (early, late) = try Self.dispatchOneEvent(to: streams, on: loop)
        #expect(early.prefix(FrameDispatch.wakeBatch).allSatisfy { $0 }, "the first batch is written before the dispatch ends")
        #expect(early.suffix(10).allSatisfy { !$0 }, "the rest wait for the end of the dispatch")
        #expect(late.suffix(10).allSatisfy { $0 })
    }

    @Test func aDispatchBatchEndsBetweenConnectionsNotInsideOne() throws {
        // Three connections' streams, in the order the topic index keeps them: 200, 100, 10.
        let connections = (0..<3).map { _ in TopicIndexTests.Member("connection") }
        let loop = EmbeddedEventLoop()
        let streams = try zip(connections, [200, 100, 10]).flatMap { connection, count in
            try (0..<count).map { _ in
                try Self.open(.init(maximumFrames: 100, maximumBytes: 1 << 20), on: loop, connection: ObjectIdentifier(connection))
            }
        }
        let (early, late) = try Self.dispatchOneEvent(to: streams, on: loop)
        #expect(early.prefix(300).allSatisfy { $0 }, "the batch passed 256 inside the second connection and ended after it")
        #expect(early.suffix(10).allSatisfy { !$0 }, "the third connection waits for the end of the dispatch")
        #expect(late.suffix(10).allSatisfy { $0 })
    }

    @Test func anInboxABurstMadeLargeGivesItsStorageBackOnceTaken() throws {
        let stream = try Self.open(.init(maximumFrames: 5000, maximumBytes: 1 << 24))
        for id in 1...2000 { stream.subscriber.push(Self.event(Int64(id))) }
        stream.dispatch()
        #expect(stream.subscriber.inboxCapacity <= 2 * Subscriber.keptInboxCapacity, "not the burst's 2,000 frames")
        #expect(try ChunkedResponse(try stream.channel.flushedBytes()).eventIDs == Array(1...2000))
        stream.subscriber.push(Self.event(2001))
        stream.dispatch()
        #expect(stream.subscriber.inboxCapacity > 0, "a small inbox keeps its storage: a pass allocates nothing")
    }

    @Test func aPassMeasuresEachEventsLagOnceForAllTheLoopsSubscribers() throws {
        let loop = EmbeddedEventLoop()
        var streams: [(EmbeddedChannel, Subscriber)] = []
        let recorder = HookRecorder()
        for id in 1...3 {
            let channel = EmbeddedChannel(loop: loop)
            let handler = StreamTestHandler()
            try channel.pipeline.syncOperations.addHandler(HTTPResponseEncoder())
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try channel.pipeline.syncOperations.addHandler(handler)
            let limits = StreamStateMachine.Limits(maximumFrames: 100, maximumBytes: 1 << 20)
            streams.append((channel, try Subscriber.live(id: id, transport: "http1", limits: limits, on: handler, hooks: recorder.hooks)))
        }
        let logged = { (id: Int64) in
            StreamFrame(id: id, bytes: ByteBuffer(string: "id: \(id)\ndata: {}\n\n"), loggedAt: Date(timeIntervalSinceNow: -0.5))
        }
        var dispatch = FrameDispatch()
        for (_, subscriber) in streams { _ = dispatch.push(logged(1), to: subscriber) }
        let second = logged(2)
        for (_, subscriber) in streams { _ = dispatch.push(second, to: subscriber) }
        dispatch.send()
        loop.run()
        #expect(recorder.lags.count == 2, "two events to three subscribers: two lags, not six")
        #expect(recorder.lags.allSatisfy { $0 >= 0.5 && $0 < 5 }, "from the log append to the end of the pass")
        for (channel, _) in streams {
            let ids = try ChunkedResponse(try channel.flushedBytes()).eventIDs
            #expect(ids == [1, 2], "every subscriber got both")
        }
    }

    @Test func eventsThatCannotBeConflatedCutTheStreamAtTheBound() throws {
        let stream = try Self.open(.init(maximumFrames: 50, maximumBytes: 1 << 20, conflateAtFrames: 10))
        stream.setWritable(false)
        for id in 1...60 { stream.subscriber.push(Self.event(Int64(id))) }
        stream.dispatch()
        #expect(stream.recorder.cuts == [.backlogFull])
        #expect(stream.recorder.ended == 1, "the hub lets it go once")
        #expect(!stream.channel.isActive, "the connection is cut")
        #expect(!stream.subscriber.push(Self.event(61)), "nothing more is taken")
    }

    @Test func aSocketThatTakesNothingForTheStallTimeoutIsCut() async throws {
        let stream = try Self.open(.init(maximumFrames: 1000, maximumBytes: 1 << 20, stallTimeout: .milliseconds(50)))
        stream.setWritable(false)
        stream.subscriber.push(Self.event(1))
        stream.dispatch()
        #expect(stream.recorder.cuts.isEmpty, "a moment without progress is no stall")
        try await Task.sleep(for: .milliseconds(80))
        stream.subscriber.push(Self.event(2))
        stream.dispatch()
        #expect(stream.recorder.cuts == [.stalled])
        #expect(!stream.channel.isActive)
    }

    @Test func finishWritesWhatWaitsThenTheFinalFrameAndEndsTheResponse() throws {
        let stream = try Self.open(.init(maximumFrames: 1000, maximumBytes: 1 << 20))
        stream.setWritable(false)
        for id in 1...3 { stream.subscriber.push(Self.event(Int64(id))) }
        stream.dispatch()
        stream.subscriber.finish(.shutdown, final: StreamFrame(id: nil, bytes: ByteBuffer(string: ": shutting down; reconnect\n\n")))
        stream.dispatch()
        let response = try ChunkedResponse(try stream.channel.flushedBytes())
        #expect(response.eventIDs == [1, 2, 3])
        #expect(response.body.hasSuffix(": shutting down; reconnect\n\n"))
        #expect(response.ended, "the response's last chunk is written")
        #expect(stream.recorder.finishing == [.shutdown])
        #expect(!stream.channel.isActive, "and the connection closed")
        #expect(stream.recorder.ended == 1)
    }
}
