import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A deliberately thin HTTP/1.1 load client: a fixed set of keep-alive connections on one
/// event loop, requests pipelined, responses matched in order. It spends a
/// fraction of the CPU of a general-purpose client, so on a small machine the load
/// generator does not steal the cores it is measuring.
final class PipelinedHTTPClient: Sendable {
    private let channels: [any Channel]
    private let handlers: [ResponseMatcher]
    private let group: MultiThreadedEventLoopGroup

    static func connect(host: String, port: Int, connections: Int, recorder: LatencyRecorder) async throws -> PipelinedHTTPClient {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var channels: [any Channel] = []
        var handlers: [ResponseMatcher] = []
        for _ in 0..<connections {
            let handler = ResponseMatcher(recorder: recorder)

            let channel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(host: host, port: port).get()
            channels.append(channel)
            handlers.append(handler)
        }
        return PipelinedHTTPClient(channels: channels, handlers: handlers, group: group)
    }

    private init(channels: [any Channel], handlers: [ResponseMatcher], group: MultiThreadedEventLoopGroup) {
        self.channels = channels
        self.handlers = handlers
        self.group = group
    }

    /// Sends a request on connection `index % connections`; its latency counts from `scheduled`.
    func send(_ head: HTTPRequestHead, body: ByteBuffer, on index: Int, scheduled: ContinuousClock.Instant) {
        let slot = index % channels.count
        let channel = channels[slot]
        let handler = handlers[slot]
        channel.eventLoop.execute {
            handler.pending.append(scheduled)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
    }

    /// Waits until every sent request has its response (or `timeout` passes).
    func drain(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var outstanding = 0
            for (channel, handler) in zip(channels, handlers) {
                outstanding += (try? await channel.eventLoop.submit { handler.pending.count }.get()) ?? 0
            }
            if outstanding == 0 { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    func shutdown() async {
        for channel in channels { try? await channel.close() }
        try? await group.shutdownGracefully()
    }
}

/// Matches pipelined responses to the requests' scheduled times, first in, first out.
/// Touched only on its channel's event loop.
private final class ResponseMatcher: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    var pending = CircularBuffer<ContinuousClock.Instant>()
    private var status = 0
    private let recorder: LatencyRecorder

    init(recorder: LatencyRecorder) {
        self.recorder = recorder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body:
            break
        case .end:
            guard let scheduled = pending.popFirst() else { return }
            let latency = ContinuousClock.now - scheduled
            let micros = latency.components.seconds * 1_000_000 + latency.components.attoseconds / 1_000_000_000_000
            recorder.record(microseconds: UInt64(max(0, micros)), outcome: String(status))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        FileHandle.standardError.write(Data("vacancy-bench: connection error: \(error)\n".utf8))
        for _ in pending { recorder.record(microseconds: 1, outcome: "error") }
        pending.removeAll()
        context.close(promise: nil)
    }
}
