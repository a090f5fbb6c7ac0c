import Foundation
import HTTPTypes
import Hummingbird
import Logging

extension HTTPField.Name {
    public static let requestID = Self("X-Request-Id")!
    public static let idempotencyKey = Self("Idempotency-Key")!
    public static let lastEventID = Self("Last-Event-ID")!
}

/// Gives every request an id (keeping a well-formed incoming `X-Request-Id`), puts it in
/// the request's logger and echoes it on the response; logs each request at debug.
public struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let requestID = Self.acceptable(request.headers[.requestID]) ?? Self.generate()
        var context = context
        context.logger[metadataKey: "request_id"] = .string(requestID)
        let started = ContinuousClock.now
        var response = try await next(request, context)
        response.headers[.requestID] = requestID
        if context.logger.logLevel <= .debug {
            let elapsed = ContinuousClock.now - started
            context.logger.debug(
                "request",
                metadata: [
                    "method": .string(request.method.rawValue),
                    "path": .string(request.uri.path),
                    "status": .stringConvertible(response.status.code),
                    "duration_ms": .string(
                        String(format: "%.2f", Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)),
                ]
            )
        }
        return response
    }

    /// A well-formed incoming id, else a new one (for answers written outside the router).
    public static func id(for incoming: String?) -> String {
        acceptable(incoming) ?? generate()
    }

    static func acceptable(_ value: String?) -> String? {
        guard let value, (1...128).contains(value.utf8.count),
            value.utf8.allSatisfy({
                $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || (48...57).contains($0)
                    || (65...90).contains($0) || (97...122).contains($0)
            })
        else { return nil }
        return value
    }

    static func generate() -> String {
        UUID().uuidString.lowercased()
    }
}
