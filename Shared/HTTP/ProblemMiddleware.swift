import Hummingbird
import Logging
import NIOCore

/// Turns every error into a problem+json answer: client errors as they are, database
/// outages as 503, anything unexpected as a logged 500 carrying the request id.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            return try problem.response(from: request, context: context)
        } catch let error as DatabaseUnavailable {
            context.logger.warning("database unavailable", metadata: ["error": .string(error.reason)])
            return try Problem.databaseUnavailable().response(from: request, context: context)
        } catch let error where DatabaseUnavailable.isConnectionProblem(error) {
            context.logger.warning("database unavailable", metadata: ["error": .string(String(reflecting: error))])
            return try Problem.databaseUnavailable().response(from: request, context: context)
        } catch let error as HTTPError {
            return try Problem.fromStatus(error.status, detail: error.body).response(from: request, context: context)
        } catch is NIOTooManyBytesError {
            return try Problem.fromStatus(.contentTooLarge).response(from: request, context: context)
        } catch {
            context.logger.error("unexpected error", metadata: ["error": .string(String(reflecting: error))])
            return try Problem.internalError().response(from: request, context: context)
        }
    }
}
