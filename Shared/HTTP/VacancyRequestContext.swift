import Hummingbird
import Logging
import NIOCore

/// The request context of every Vacancy service: Hummingbird's core storage plus the
/// caller an API key identified, if any.
public struct VacancyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The name of the API key the request authenticated with.
    public var caller: String?
    /// The channel the request came on: for HTTP/2, the stream's own channel.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.caller = nil
        self.channel = source.channel
    }

    /// This request's id (set by `RequestIDMiddleware`).
    public var requestID: String {
        logger[metadataKey: "request_id"]?.description ?? "-"
    }
}
