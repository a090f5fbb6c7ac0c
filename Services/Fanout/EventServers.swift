import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOHTTPTypesHTTP2
import NIOSSL
import NIOTLS

extension HTTPServerBuilder {
    /// Plain HTTP/1.1 where an `/events` stream holds no task (see `EventHTTP1Channel`).
    static func events(http: HTTP1Channel.Configuration, sendTimeout: Duration?, unsentBytes: Int?) -> HTTPServerBuilder {
        .sendTimeout(sendTimeout, unsentBytes: unsentBytes) { responder in EventHTTP1Channel(http: http, responder: responder) }
    }

    /// TLS with ALPN: HTTP/2 or HTTP/1.1, where an `/events` stream holds no task either.
    static func secureEvents(tls: TLSConfiguration, http: HTTP1Channel.Configuration, sendTimeout: Duration?, unsentBytes: Int?) throws
        -> HTTPServerBuilder
    {
        var tls = tls
        tls.applicationProtocols = NIOHTTP2SupportedALPNProtocols
        let context = try NIOSSLContext(configuration: tls)
        return .sendTimeout(sendTimeout, unsentBytes: unsentBytes) { responder in
            SecureEventChannel(sslContext: context, http: http, responder: responder)
        }
    }
}

/// The fan-out's connections, served without a task or an `NIOAsyncChannel` until they need one.
///
/// Hummingbird's own channels wrap every connection (and every HTTP/2 stream) in an
/// `NIOAsyncChannel` and run a task for it until it closes: about 5 KiB for each open
/// `/events` stream on top of the stream itself, which the `EventStreamHandler` serves from
/// the pipeline and never needs. Here a connection's pipeline is the HTTP codec, the
/// `EventStreamHandler` and a `RouterBridge`, which wraps the channel and starts
/// Hummingbird's request handling in a task only when a request the `EventStreamHandler`
/// passed on arrives (any other path, or an `/events` request it refuses with a problem).
///
/// Connections need no task of their own: the server's quiescing helper tracks them for
/// graceful shutdown, where an HTTP/1.1 connection is closed by Hummingbird's
/// `HTTPConnectionStateHandler` (or its stream by the `EventStreamHandler`) and an HTTP/2
/// one by the `HTTP2ConnectionCloser`.
struct EventHTTP1Channel: HTTPChannelHandler {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
    }

    let http: HTTP1Channel.Configuration
    let responder: Responder

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try Self.configure(channel, http: http, server: self, logger: logger)
            return Value(channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {}

    /// Hummingbird's HTTP/1.1 pipeline (as `HTTP1Channel` makes it) with a `RouterBridge`
    /// in place of its `NIOAsyncChannel`.
    static func configure(_ channel: any Channel, http: HTTP1Channel.Configuration, server: some HTTPChannelHandler, logger: Logger) throws
    {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = http.httpDecoder.maxHeaderFieldSize
        limits.maxHeaderListSize = http.httpDecoder.maxHeaderListSize
        limits.maxHeaderFieldCount = http.httpDecoder.maxHeaderFieldCount
        let pipeline = channel.pipeline.syncOperations
        try pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: false,  // requests are taken one at a time by Hummingbird's handler
            withErrorHandling: false,  // a parse error is answered by Hummingbird's handler
            withOutboundHeaderValidation: false,  // HTTPTypes validates
            withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: limits
        )
        try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        try pipeline.addHandlers(http.additionalChannelHandlers())
        try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: http.idleTimeout.map { .init($0) }, logger: logger))
        try pipeline.addHandler(RouterBridge(server: server, halfClosure: true, logger: logger))
    }
}

/// One TLS connection to the fan-out, HTTP/2 or HTTP/1.1 as ALPN decides; served as
/// `EventHTTP1Channel` describes.
struct SecureEventChannel: HTTPChannelHandler {
    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<Void>
        let channel: any Channel
    }

    let sslContext: NIOSSLContext
    let http: HTTP1Channel.Configuration
    let responder: Responder

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(NIOSSLServerHandler(context: sslContext))
            let alpn = NIOTypedApplicationProtocolNegotiationHandler<Void> { result, channel in
                channel.eventLoop.makeCompletedFuture {
                    switch result {
                    case .negotiated("h2"):
                        try configureHTTP2(channel, logger: logger)
                    case .negotiated("http/1.1"), .fallback:
                        try EventHTTP1Channel.configure(channel, http: http, server: self, logger: logger)
                    case .negotiated:
                        channel.close(promise: nil)
                        throw NIOHTTP2Errors.invalidALPNToken()
                    }
                }
            }
            try pipeline.addHandler(alpn)
            return Value(negotiated: alpn.protocolNegotiationResult, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            try await value.negotiated.get()
        } catch {
            logger.debug("TLS connection failed", metadata: ["error": "\(String(reflecting: error))"])
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
                try streamPipeline.addHandler(RouterBridge(server: self, halfClosure: false, logger: logger))
            }
        }
        try pipeline.addHandler(closer)
    }
}

/// Last in a connection's (or HTTP/2 stream's) pipeline: the first inbound event to reach
/// it (a request the `EventStreamHandler` did not take, a parse error, the client closing)
/// is one for Hummingbird. Only then is the channel wrapped in an `NIOAsyncChannel` and
/// given a task running Hummingbird's request handling, and the event passed on to it.
final class RouterBridge: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart

    private let server: any HTTPChannelHandler
    private let halfClosure: Bool
    private let logger: Logger

    init(server: any HTTPChannelHandler, halfClosure: Bool, logger: Logger) {
        self.server = server
        self.halfClosure = halfClosure
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        handOver(context) { $0.fireChannelRead(data) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handOver(context) { $0.fireErrorCaught(error) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ChannelEvent, event == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        handOver(context) { $0.fireUserInboundEventTriggered(event) }
    }

    /// Hands the channel over to Hummingbird: wraps it (the wrapper goes after this
    /// handler), passes it the event, leaves the pipeline and starts the request handling.
    private func handOver(_ context: ChannelHandlerContext, passing event: (ChannelHandlerContext) -> Void) {
        let wrapped: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>
        do {
            wrapped = try NIOAsyncChannel(
                wrappingChannelSynchronously: context.channel, configuration: .init(isOutboundHalfClosureEnabled: halfClosure))
        } catch {
            logger.debug("cannot serve request", metadata: ["error": "\(String(reflecting: error))"])
            context.close(promise: nil)
            return
        }
        event(context)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        let (server, logger) = (server, logger)
        Task { await server.handleHTTP(asyncChannel: wrapped, logger: logger) }
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
