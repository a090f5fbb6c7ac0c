import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP2
import NIOHTTPTypes
import NIOHTTPTypesHTTP2
import NIOSSL
import NIOTLS

extension HTTPServerBuilder {
    /// TLS with ALPN: HTTP/2 or HTTP/1.1. Over HTTP/2 an `/events` stream holds no task: only
    /// a request the router answers gets one, once its head has arrived (see `SecureChannel`).
    static func secureEvents(tls: TLSConfiguration, http: HTTP1Channel.Configuration) throws -> HTTPServerBuilder {
        var tls = tls
        tls.applicationProtocols = NIOHTTP2SupportedALPNProtocols
        let context = try NIOSSLContext(configuration: tls)
        return .init { responder in SecureChannel(sslContext: context, http: http, responder: responder) }
    }
}

/// One TLS connection to the fan-out, HTTP/2 or HTTP/1.1 as ALPN decides.
///
/// This replaces HummingbirdHTTP2's upgrade channel for one reason: memory per stream. That
/// channel wraps every HTTP/2 stream in an `NIOAsyncChannel` and runs a task for it until it
/// closes, about 5 KiB per open `/events` stream on top of the stream itself. Here a stream's
/// pipeline is only the frame codec, the `EventStreamHandler` and a `RouterBridge`; the
/// bridge wraps the stream and starts a task only for a request the `EventStreamHandler`
/// passed on (any other path, or an `/events` request it refuses with a problem).
///
/// HTTP/1.1 connections are served by Hummingbird's own `HTTP1Channel`, exactly as on the
/// plain port.
struct SecureChannel: HTTPChannelHandler {
    enum Negotiated: Sendable {
        case http1(HTTP1Channel.Value)
        case http2
    }

    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<Negotiated>
        let channel: any Channel
    }

    let sslContext: NIOSSLContext
    let http: HTTP1Channel.Configuration
    let responder: Responder
    private let http1: HTTP1Channel

    init(sslContext: NIOSSLContext, http: HTTP1Channel.Configuration, responder: @escaping Responder) {
        self.sslContext = sslContext
        self.http = http
        self.responder = responder
        self.http1 = HTTP1Channel(responder: responder, configuration: http)
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(NIOSSLServerHandler(context: sslContext))
            let alpn = NIOTypedApplicationProtocolNegotiationHandler<Negotiated> { result, channel in
                switch result {
                case .negotiated("h2"):
                    return channel.eventLoop.makeCompletedFuture {
                        try configureHTTP2(channel, logger: logger)
                        return .http2
                    }
                case .negotiated("http/1.1"), .fallback:
                    return http1.setup(channel: channel, logger: logger).map { .http1($0) }
                case .negotiated:
                    return channel.close().flatMap { channel.eventLoop.makeFailedFuture(NIOHTTP2Errors.invalidALPNToken()) }
                }
            }
            try pipeline.addHandler(alpn)
            return Value(negotiated: alpn.protocolNegotiationResult, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http1(let connection):
                await http1.handle(value: connection, logger: logger)
            case .http2:
                // The streams serve themselves; the connection is done when its channel closes.
                try await withTaskCancellationHandler {
                    try await value.channel.closeFuture.get()
                } onCancel: {
                    value.channel.close(promise: nil)
                }
            }
        } catch {
            logger.debug("TLS connection ended", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    private func configureHTTP2(_ channel: any Channel, logger: Logger) throws {
        let closer = HTTP2ConnectionCloser(eventLoop: channel.eventLoop)
        let pipeline = channel.pipeline.syncOperations
        _ = try pipeline.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: .init(),
            streamConfiguration: .init(),
            streamDelegate: closer.streamDelegate
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                let streamPipeline = stream.pipeline.syncOperations
                try streamPipeline.addHandler(HTTP2FramePayloadToHTTPServerCodec())
                try streamPipeline.addHandlers(http.additionalChannelHandlers())
                try streamPipeline.addHandler(RouterBridge(server: self, logger: logger))
            }
        }
        try pipeline.addHandler(closer)
    }
}

/// Last in an HTTP/2 stream's pipeline: the first request part to reach it is one the
/// `EventStreamHandler` did not take. Only then is the stream wrapped for Hummingbird's
/// request handling and given a task, and the part passed on to it.
final class RouterBridge: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart

    private let server: SecureChannel
    private let logger: Logger

    init(server: SecureChannel, logger: Logger) {
        self.server = server
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let channel = context.channel
        let request: HTTP1Channel.Value
        do {
            request = try HTTP1Channel.Value(wrappingChannelSynchronously: channel)
        } catch {
            logger.debug("cannot serve HTTP/2 request", metadata: ["error": "\(String(reflecting: error))"])
            context.close(promise: nil)
            return
        }
        // The wrapper sits after this handler: the part goes to it, then this handler leaves.
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        let (server, logger) = (server, logger)
        Task { await server.handleHTTP(asyncChannel: request, logger: logger) }
    }
}

/// Closes an HTTP/2 connection when it has no more use: on graceful shutdown (a GOAWAY,
/// then closing once its streams are done, which `StreamCloser` makes quick for event
/// streams), when the client half-closes, or on an error.
final class HTTP2ConnectionCloser: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// How long streams get after the GOAWAY before the connection is closed under them.
    static let gracePeriod = TimeAmount.seconds(10)

    private let eventLoop: any EventLoop
    private var context: ChannelHandlerContext?
    private var openStreams = 0
    private var highestStream = HTTP2StreamID.rootStream
    private var draining = false

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    var streamDelegate: some NIOHTTP2StreamDelegate { Delegate(closer: NIOLoopBound(self, eventLoop: eventLoop)) }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            drain(context: context)
        case let event as ChannelEvent where event == .inputClosed:
            context.close(promise: nil)
        default:
            break
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// No new streams; close once the open ones are done, or after the grace period.
    private func drain(context: ChannelHandlerContext) {
        guard !draining else { return }
        draining = true
        let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: highestStream, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(goAway), promise: nil)
        if openStreams == 0 {
            context.close(promise: nil)
            return
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: Self.gracePeriod) { loopBound.value.close(promise: nil) }
    }

    fileprivate func streamCreated(_ id: HTTP2StreamID) {
        openStreams += 1
        highestStream = max(highestStream, id)
    }

    fileprivate func streamClosed() {
        openStreams -= 1
        if draining, openStreams == 0 { context?.close(promise: nil) }
    }

    /// NIOHTTP2 calls the delegate on the connection's event loop.
    private struct Delegate: NIOHTTP2StreamDelegate {
        let closer: NIOLoopBound<HTTP2ConnectionCloser>

        func streamCreated(_ id: HTTP2StreamID, channel: any Channel) { closer.value.streamCreated(id) }
        func streamClosed(_ id: HTTP2StreamID, channel: any Channel) { closer.value.streamClosed() }
    }
}
