import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Strong ETags over the bytes of an answer, and `If-None-Match` handling.
public enum ETag {
    /// A quoted FNV-1a 64-bit digest of `bytes`.
    public static func of(_ bytes: some Sequence<UInt8>) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return "\"" + String(repeating: "0", count: 16 - hex.count) + hex + "\""
    }

    /// Whether the request's `If-None-Match` names `etag` (or `*`).
    public static func matches(_ request: Request, _ etag: String) -> Bool {
        guard let header = request.headers[.ifNoneMatch] else { return false }
        return header.split(separator: ",").contains { candidate in
            let trimmed = candidate.trimmingCharacters(in: .whitespaces)
            return trimmed == "*" || trimmed == etag || trimmed == "W/" + etag
        }
    }

    /// 304 when the client has this answer already, else the answer with its ETag.
    /// The tag covers `content` only, so it changes exactly when the content does.
    public static func respond(to request: Request, content: some Encodable, envelope: (Data) -> Data) throws -> Response {
        let contentBytes = try JSONCoding.encoder.encode(content)
        let etag = of(contentBytes)
        var headers: HTTPFields = [.eTag: etag, .cacheControl: "no-cache"]
        if matches(request, etag) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: envelope(contentBytes))))
    }
}
