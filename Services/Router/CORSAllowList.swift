import HTTPTypes
import Hummingbird
import Shared

/// Cross-origin access for the origins on the allow-list only: their requests get
/// `Access-Control-Allow-Origin` echoed back, their preflights a 204; a preflight from any
/// other origin is refused with 403. Requests without `Origin` pass untouched.
struct CORSAllowList: RouterMiddleware {
    typealias Context = VacancyRequestContext

    let origins: Set<String>

    static let allowedMethods = "GET, POST, PATCH, DELETE, OPTIONS"
    static let allowedHeaders = "Authorization, Content-Type, Idempotency-Key, If-None-Match, Last-Event-ID, X-Request-Id"
    static let exposedHeaders = "ETag, Location, Retry-After, X-Request-Id"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let allowed = origins.contains(origin)
        let isPreflight = request.method == .options && request.headers[.accessControlRequestMethod] != nil
        if isPreflight {
            guard allowed else {
                throw Problem(
                    "origin-not-allowed", title: "Origin not allowed", status: .forbidden,
                    detail: "Cross-origin requests from \(origin) are not allowed (see VACANCY_CORS_ORIGINS).")
            }
            var headers = corsHeaders(origin)
            headers[.accessControlAllowMethods] = Self.allowedMethods
            headers[.accessControlAllowHeaders] = Self.allowedHeaders
            headers[.accessControlMaxAge] = "600"
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        if allowed {
            response.headers.append(contentsOf: corsHeaders(origin))
            response.headers[.accessControlExposeHeaders] = Self.exposedHeaders
        }
        return response
    }

    private func corsHeaders(_ origin: String) -> HTTPFields {
        [.accessControlAllowOrigin: origin, .accessControlAllowCredentials: "true", .vary: "Origin"]
    }
}
