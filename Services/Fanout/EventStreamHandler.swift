import FanoutCore
import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// Serves `GET /events` from the channel pipeline, between the HTTP codec and Hummingbird's
/// request handling: a stream it accepts becomes a `Subscriber` that the dispatcher writes
/// into on the channel's event loop, so an open stream holds no task, no async writer and
/// no request handler's stack. A request it does not accept (any other path, or an
/// `/events` request that would be refused) goes on to the router unchanged, which answers
/// it, problems included, as every other request.
///
/// One handler per HTTP/1.1 connection or HTTP/2 stream. After a stream ends the channel is
/// closed; the client reconnects with `Last-Event-ID`.
///
/// An `/events` request pipelined behind a request still being answered is not taken (its
/// stream would overtake that response): it goes to the router too, which asks the client
/// to retry.
final class EventStreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let streams: FanoutStream
    private enum State {
        /// Requests go to the router; `unanswered` of them have not had their response's end.
        case passing(unanswered: Int)
        /// The request was taken as a stream: its remaining parts are swallowed.
        case streaming(Subscriber)
    }
    private var state = State.passing(unanswered: 0)

    init(streams: FanoutStream) {
        self.streams = streams
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch state {
        case .streaming:
            return  // the rest of a GET: nothing to read
        case .passing(let unanswered):
            guard case .head(let head) = part else {
                context.fireChannelRead(data)
                return
            }
            if unanswered == 0, head.method == .get, Self.isEventsPath(head.path), let subscriber = streams.open(head, context: context) {
                state = .streaming(subscriber)
                // Request bookkeeping (idle timeout, keep-alive) is over for this channel:
                // the stream owns it until it closes.
                if let bookkeeping = try? context.pipeline.syncOperations.handler(type: HTTPConnectionStateHandler.self) {
                    context.pipeline.syncOperations.removeHandler(bookkeeping, promise: nil)
                }
                return
            }
            state = .passing(unanswered: unanswered + 1)
            context.fireChannelRead(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .passing(let unanswered) = state, case .end = unwrapOutboundIn(data) {
            state = .passing(unanswered: max(0, unanswered - 1))
        }
        context.write(data, promise: promise)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .streaming(let subscriber) = state { subscriber.writabilityChanged() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .streaming(let subscriber) = state else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch event {
        case is ChannelShouldQuiesceEvent:
            // The server is shutting down: end the stream cleanly so the client reconnects elsewhere.
            subscriber.finish(.shutdown, final: .comment("shutting down; reconnect"))
        case let event as ChannelEvent where event == .inputClosed:
            // Over HTTP/2 the client has finished its request and the stream goes on. Over
            // HTTP/1.1 the client closed its side of the connection: it has gone (a browser
            // never half-closes), so the stream ends now rather than at the next failed write.
            if subscriber.transport == "http1" { context.close(promise: nil) }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .streaming(let subscriber) = state { subscriber.channelClosed() }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if case .streaming(let subscriber) = state { subscriber.channelClosed() }
    }

    static func isEventsPath(_ path: String?) -> Bool {
        guard let path else { return false }
        let route = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return route == "/events"
    }
}
