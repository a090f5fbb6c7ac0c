import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A request body type that names every field it accepts, so unknown fields are refused.
public protocol StrictDecodable: Decodable, Sendable {
    static var acceptedFields: Set<String> { get }
    /// Fields that may be sent as `null`; every other field must not be.
    static var nullableFields: Set<String> { get }
}

extension StrictDecodable {
    public static var nullableFields: Set<String> { [] }
}

/// Reads JSON request bodies strictly: right content type, bounded size, a JSON object
/// with known fields only, each field's problem named in the answer.
public enum StrictJSONBody {
    public static let defaultLimit = 64 * 1024

    public static func decode<T: StrictDecodable>(
        _ type: T.Type,
        from request: Request,
        limit: Int = defaultLimit
    ) async throws -> T {
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard mediaType == "application/json" || mediaType.hasSuffix("+json") else {
            throw Problem(
                "unsupported-media-type",
                title: "Unsupported media type",
                status: .unsupportedMediaType,
                detail: "Send the body as application/json (got \(contentType.isEmpty ? "no Content-Type" : contentType))."
            )
        }
        let tooLarge = Problem(
            "body-too-large", title: "Request body too large", status: .contentTooLarge,
            detail: "The body may be at most \(limit) bytes.",
            // The rest of the body is not read, so the connection cannot carry another request.
            headers: [.connection: "close"]
        )
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit { throw tooLarge }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw tooLarge
        }
        return try decode(type, from: Data(buffer.readableBytesView))
    }

    public static func decode<T: StrictDecodable>(_ type: T.Type, from data: Data) throws -> T {
        do {
            return try JSONCoding.decoder.decode(StrictEnvelope<T>.self, from: data).value
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty {
                throw Problem("malformed-json", title: "Malformed JSON", status: .badRequest, detail: "The body is not valid JSON.")
            }
            throw Problem.invalidRequest([fieldError(for: error)])
        }
    }

    static func fieldError(for error: DecodingError) -> Problem.FieldError {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            let keys = codingPath + (last.map { [$0] } ?? [])
            let joined = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return joined.isEmpty ? "body" : joined
        }
        switch error {
        case .keyNotFound(let key, let context):
            return .init(field: path(context.codingPath, key), message: "is required")
        case .valueNotFound(_, let context):
            return .init(field: path(context.codingPath), message: "must not be null")
        case .typeMismatch(let type, let context):
            return .init(field: path(context.codingPath), message: "must be \(jsonTypeName(type))")
        case .dataCorrupted(let context):
            return .init(field: path(context.codingPath), message: context.debugDescription)
        @unknown default:
            return .init(field: "body", message: "is not valid")
        }
    }

    static func jsonTypeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int32.Type, is Int64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type, is Date.Type, is UUID.Type: return "a string"
        default: return "a \(type)"
        }
    }
}

extension KeyedDecodingContainer {
    /// Decodes a string field that must parse as a UUID, naming the field if it does not.
    public func decodeUUID(forKey key: Key) throws -> UUID {
        let text = try decode(String.self, forKey: key)
        guard let id = UUID(uuidString: text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "must be a UUID")
        }
        return id
    }
}

/// Decodes `T` after checking the object's keys: unknown fields and unwanted nulls are
/// refused before any field is read, so one answer names them all.
private struct StrictEnvelope<T: StrictDecodable>: Decodable {
    let value: T

    init(from decoder: any Decoder) throws {
        let container: KeyedDecodingContainer<AnyKey>
        do {
            container = try decoder.container(keyedBy: AnyKey.self)
        } catch {
            throw Problem("malformed-json", title: "Malformed JSON", status: .badRequest, detail: "The body must be a JSON object.")
        }
        var errors: [Problem.FieldError] = []
        for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
            if !T.acceptedFields.contains(key.stringValue) {
                errors.append(.init(field: key.stringValue, message: "is not a known field"))
            } else if !T.nullableFields.contains(key.stringValue), try container.decodeNil(forKey: key) {
                errors.append(.init(field: key.stringValue, message: "must not be null"))
            }
        }
        if !errors.isEmpty { throw Problem.invalidRequest(errors) }
        value = try T(from: decoder)
    }
}

private struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
