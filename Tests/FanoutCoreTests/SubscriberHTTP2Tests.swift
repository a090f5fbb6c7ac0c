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

    @Test func oneDispatchToEveryStreamOfAConnectionFlushesItOnceAndEachStreamGetsItsEvents() throws {
        let loop = EmbeddedEventLoop()
        let server = EmbeddedChannel(loop: loop)
        let client = EmbeddedChannel(loop: loop)
        let connectionFlushes = FlushCounter()
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
        for _ in 0..<2 {
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
        try #require(serverStreams.count == 2 && serverStreams.allSatisfy { $0.requestHeads == 1 })

        let recorder = HookRecorder()
        let subscribers = try serverStreams.enumerated().map { index, handler in
            try Subscriber.live(
                id: index + 1, transport: "http2", limits: .init(maximumFrames: 1000, maximumBytes: 1 << 20), on: handler,
                hooks: recorder.hooks)
        }
        try Self.interact(client, server)
        #expect(clientStreams.allSatisfy { $0.status == "200" })

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
