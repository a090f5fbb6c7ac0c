import Hummingbird
import Logging

/// The request context of every Vacancy service: Hummingbird's core storage plus the
/// caller an API key identified, if any.
public struct VacancyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The name of the API key the request authenticated with.
    public var caller: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.caller = nil
    }

    /// This request's id (set by `RequestIDMiddleware`).
    public var requestID: String {
        logger[metadataKey: "request_id"]?.description ?? "-"
    }
}
