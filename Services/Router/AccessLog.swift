import Foundation
import Hummingbird
import Logging
import Shared

/// One structured line per request when its response starts: method, path (never the
/// query, which can carry a token), status, time to the response head, client, request id
/// and, for a proxied call, the upstream instance that answered.
struct AccessLog: RouterMiddleware {
    typealias Context = VacancyRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let answering = AnsweringInstance()
        let response = try await AnsweringInstance.$current.withValue(answering) { try await next(request, context) }
        let elapsed = ContinuousClock.now - started
        context.logger.info(
            "access",
            metadata: [
                "method": .string(request.method.rawValue),
                "path": .string(request.uri.path),
                "status": .stringConvertible(response.status.code),
                "duration_ms": .string(
                    String(format: "%.1f", Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)),
                "client": .string(context.channel.remoteAddress?.ipAddress ?? "-"),
                "instance": .string(answering.baseURL ?? "-"),
            ]
        )
        return response
    }
}
