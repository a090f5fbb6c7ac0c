import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An RFC 9457 problem: every error a client can cause is one of these, answered as
/// `application/problem+json`.
public struct Problem: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    /// Where problem types live; a type is this base plus its slug.
    public static let typeBase = "https://vacancy.dev/problems/"

    /// One field a request got wrong.
    public struct FieldError: Sendable, Hashable, Codable {
        public let field: String
        public let message: String
        public init(field: String, message: String) {
            self.field = field
            self.message = message
        }
    }

    public var slug: String
    public var title: String
    public var status: HTTPResponse.Status
    public var detail: String
    public var errors: [FieldError]
    public var extensions: [String: JSONValue]
    public var headers: HTTPFields

    public init(
        _ slug: String,
        title: String,
        status: HTTPResponse.Status,
        detail: String,
        errors: [FieldError] = [],
        extensions: [String: JSONValue] = [:],
        headers: HTTPFields = [:]
    ) {
        self.slug = slug
        self.title = title
        self.status = status
        self.detail = detail
        self.errors = errors
        self.extensions = extensions
        self.headers = headers
    }

    public var type: String { Self.typeBase + slug }
    public var description: String { "\(status.code) \(slug): \(detail)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let (headers, body) = try rendered(instance: request.uri.path, requestID: context.logger[metadataKey: "request_id"]?.description)
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// The problem+json document and its headers, for answers written outside the router.
    public func rendered(instance: String, requestID: String?) throws -> (headers: HTTPFields, body: ByteBuffer) {
        var body: [String: JSONValue] = extensions
        body["type"] = .string(type)
        body["title"] = .string(title)
        body["status"] = .int(status.code)
        body["detail"] = .string(detail)
        body["instance"] = .string(instance)
        if !errors.isEmpty {
            body["errors"] = .array(errors.map { .object(["field": .string($0.field), "message": .string($0.message)]) })
        }
        if let requestID { body["request_id"] = .string(requestID) }
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        return (headers, ByteBuffer(bytes: try JSONCoding.encoder.encode(body)))
    }
}

extension Problem {
    public static func invalidRequest(_ errors: [FieldError], detail: String? = nil) -> Problem {
        Problem(
            "invalid-request",
            title: "The request is not valid",
            status: .unprocessableContent,
            detail: detail ?? errors.map { "\($0.field): \($0.message)" }.joined(separator: "; "),
            errors: errors
        )
    }

    public static func invalidField(_ field: String, _ message: String) -> Problem {
        invalidRequest([FieldError(field: field, message: message)])
    }

    /// A query parameter or header that is malformed: 400, naming it.
    public static func badParameter(_ field: String, _ message: String) -> Problem {
        Problem(
            "bad-parameter",
            title: "A request parameter is malformed",
            status: .badRequest,
            detail: "\(field): \(message)",
            errors: [FieldError(field: field, message: message)]
        )
    }

    public static func notFound(_ what: String) -> Problem {
        Problem("not-found", title: "Not found", status: .notFound, detail: what)
    }

    public static func conflict(_ slug: String, title: String, detail: String, extensions: [String: JSONValue] = [:]) -> Problem {
        Problem(slug, title: title, status: .conflict, detail: detail, extensions: extensions)
    }

    public static func databaseUnavailable(retryAfterSeconds: Int = 2) -> Problem {
        Problem(
            "service-unavailable",
            title: "Temporarily unavailable",
            status: .serviceUnavailable,
            detail: "The database cannot be reached right now; retry shortly.",
            headers: [.retryAfter: "\(retryAfterSeconds)"]
        )
    }

    public static func internalError() -> Problem {
        Problem(
            "internal-error",
            title: "Internal server error",
            status: .internalServerError,
            detail: "Something went wrong on our side; quote the request_id when reporting it."
        )
    }

    /// The generic problem for an HTTP status Hummingbird produced itself (404 for no route, …).
    public static func fromStatus(_ status: HTTPResponse.Status, detail: String? = nil) -> Problem {
        let slug: String
        switch status {
        case .notFound: slug = "not-found"
        case .methodNotAllowed: slug = "method-not-allowed"
        case .contentTooLarge: slug = "body-too-large"
        case .unsupportedMediaType: slug = "unsupported-media-type"
        case .badRequest: slug = "bad-request"
        default: slug = "http-\(status.code)"
        }
        return Problem(slug, title: status.reasonPhrase, status: status, detail: detail ?? status.reasonPhrase)
    }
}
