import FanoutCore
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import NIOHTTPTypes
import NIOHTTPTypesHTTP2
import Testing

/// Streams over one HTTP/2 connection, server and client on `EmbeddedChannel`s that hand
/// each other their bytes: what one dispatch costs the connection, and what each client
/// stream receives.
@Suite struct SubscriberHTTP2Tests {
    /// Collects a client stream's response: its headers' status and its DATA bytes.
    final class ClientStream: ChannelInboundHandler, @unchecked Sendable {
        // @unchecked: only touched on the embedded event loop, the test's own thread.
        typealias InboundIn = HTTP2Frame.FramePayload
        private(set) var status: String?
        private(set) var body = ""
        private(set) var ended = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let headers):
                status = headers.headers.first(name: ":status")
                if headers.endStream { ended = true }
            case .data(let data):
                if case .byteBuffer(let buffer) = data.data { body += String(buffer: buffer) }
                if data.endStream { ended = true }
            default:
                break
            }
        }

        var eventIDs: [Int64] {
            body.components(separatedBy: "\n").compactMap { line in line.hasPrefix("id: ") ? Int64(line.dropFirst(4)) : nil }
        }
    }

    /// A value the embedded event loop's callbacks share with the test, on the one thread.
    final class LoopBox<Value>: @unchecked Sendable {
        var value: Value
        init(_ value: Value) { self.value = value }
    }

    /// Carries bytes both ways until neither side has anything more to send.
    static func interact(_ client: EmbeddedChannel, _ server: EmbeddedChannel) throws {
        var moved = true
        while moved {
            moved = false
            client.embeddedEventLoop.run()
            let toServer = try client.flushedBytes()
            if toServer.readableBytes > 0 {
                try server.writeInbound(toServer)
                moved = true
            }
            let toClient = try server.flushedBytes()
            if toClient.readableBytes > 0 {
                try client.writeInbound(toClient)
                moved = true
            }
        }
    }

    /// What one connection's socket is asked to do, in order, into a log shared by connections.
    final class SocketLog: ChannelOutboundHandler, @unchecked Sendable {
        // @unchecked: only touched on the embedded event loop, the test's own thread.
        typealias OutboundIn = IOData
        let name: String
        let log: LoopBox<[String]>
        init(_ name: String, log: LoopBox<[String]>) {
            self.name = name
            self.log = log
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if log.value.last != "write \(name)" { log.value.append("write \(name)") }
            context.write(data, promise: promise)
        }

        func flush(context: ChannelHandlerContext) {
            log.value.append("flush \(name)")
            context.flush()
        }
    }

    /// One HTTP/2 connection on `loop` with `streams` live event streams.
    struct Connection {
        let server: EmbeddedChannel
        let client: EmbeddedChannel
        let flushes: FlushCounter
        let subscribers: [Subscriber]
        let clientStreams: [ClientStream]
        let recorder: HookRecorder

        func interact() throws { try SubscriberHTTP2Tests.interact(client, server) }
    }

    static func connection(on loop: EmbeddedEventLoop, streams: Int, firstID: Int = 1, log: SocketLog? = nil) throws -> Connection {
        let server = EmbeddedChannel(loop: loop)
        let client = EmbeddedChannel(loop: loop)
        let connectionFlushes = FlushCounter()
        if let log { try server.pipeline.syncOperations.addHandler(log) }
        try server.pipeline.syncOperations.addHandler(connectionFlushes)
        let accepted = LoopBox<[StreamTestHandler]>([])
        _ = try server.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                let handler = StreamTestHandler()
                accepted.value.append(handler)
                try stream.pipeline.syncOperations.addHandlers([HTTP2FramePayloadToHTTPServerCodec(), handler])
            }
        }
        let multiplexer = try client.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
        ) { $0.eventLoop.makeSucceededVoidFuture() }
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8083)).wait()
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8083)).wait()

        var clientStreams: [ClientStream] = []
        for _ in 0..<streams {
            let collector = ClientStream()
            clientStreams.append(collector)
            let request: HPACKHeaders = [":method": "GET", ":path": "/events?topic=availability", ":scheme": "http", ":authority": "x"]
            multiplexer.createStreamChannel { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }.whenSuccess { channel in
                channel.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: request, endStream: true)), promise: nil)
            }
            loop.run()
        }
        try Self.interact(client, server)
        let serverStreams = accepted.value
        try #require(serverStreams.count == streams && serverStreams.allSatisfy { $0.requestHeads == 1 })

        let recorder = HookRecorder()
        let subscribers = try serverStreams.enumerated().map { index, handler in
            try Subscriber.live(
                id: firstID + index, transport: "http2", limits: .init(maximumFrames: 1000, maximumBytes: 1 << 20), on: handler,
                hooks: recorder.hooks)
        }
        try Self.interact(client, server)
        #expect(clientStreams.allSatisfy { $0.status == "200" })
        return Connection(
            server: server, client: client, flushes: connectionFlushes, subscribers: subscribers, clientStreams: clientStreams,
            recorder: recorder)
    }

    static func event(_ id: Int64) -> StreamFrame {
        StreamFrame(id: id, bytes: ByteBuffer(string: "id: \(id)\nevent: availability.updated\ndata: {}\n\n"))
    }

    @Test func eachConnectionIsFlushedOnceAsSoonAsItsStreamsAreWrittenNotAfterThePass() throws {
        let loop = EmbeddedEventLoop()
        let log = LoopBox<[String]>([])
        let a = try Self.connection(on: loop, streams: 2, firstID: 1, log: SocketLog("A", log: log))
        let b = try Self.connection(on: loop, streams: 2, firstID: 3, log: SocketLog("B", log: log))
        log.value = []
        // Handed over interleaved, as the topic index may: A, B, A, B.
        var dispatch = FrameDispatch()
        let frame = Self.event(1)
        for subscriber in [a.subscribers[0], b.subscribers[0], a.subscribers[1], b.subscribers[1]] {
            _ = dispatch.push(frame, to: subscriber)
        }
        dispatch.send()
        loop.run()
        #expect(log.value == ["write A", "flush A", "write B", "flush B"], "A's bytes leave before B's streams are written")
        try a.interact()
        try b.interact()
        for stream in a.clientStreams + b.clientStreams { #expect(stream.eventIDs == [1]) }
    }

    @Test func oneDispatchToEveryStreamOfAConnectionFlushesItOnceAndEachStreamGetsItsEvents() throws {
        let loop = EmbeddedEventLoop()
        let connection = try Self.connection(on: loop, streams: 2)
        let (connectionFlushes, subscribers, clientStreams, recorder) = (
            connection.flushes, connection.subscribers, connection.clientStreams, connection.recorder
        )
        let (client, server) = (connection.client, connection.server)
        connectionFlushes.reset()
        for id in Int64(1)...20 {
            let frame = StreamFrame(id: id, bytes: ByteBuffer(string: "id: \(id)\nevent: availability.updated\ndata: {}\n\n"))
            for subscriber in subscribers { subscriber.push(frame) }
        }
        loop.run()
        #expect(connectionFlushes.flushes == 1, "one flush for both streams' writes, not one per stream")
        try Self.interact(client, server)
        for stream in clientStreams { #expect(stream.eventIDs == Array(1...20)) }

        subscribers[0].finish(.tokenExpired, final: StreamFrame(id: nil, bytes: ByteBuffer(string: "event: expired\ndata: {}\n\n")))
        try Self.interact(client, server)
        #expect(
            clientStreams[0].ended && clientStreams[0].body.hasSuffix("event: expired\ndata: {}\n\n"),
            "the stream ends after its last frame")
        #expect(!clientStreams[1].ended, "the other stream on the connection goes on")
        #expect(recorder.finishing == [.tokenExpired])
        #expect(recorder.ended == 1)
    }
}
