import Foundation
import NIOCore

/// An HTTP/1.1 response with a chunked body, parsed strictly: a chunk whose size line, bytes
/// or closing CRLF are out of place is an error, not a guess.
struct ChunkedResponse {
    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    var head: String
    var chunks: [String]
    /// The zero-size last chunk arrived.
    var ended: Bool

    var body: String { chunks.joined() }

    /// The `id:` of each event in the body, in order.
    var eventIDs: [Int64] {
        body.components(separatedBy: "\n").compactMap { line in line.hasPrefix("id: ") ? Int64(line.dropFirst(4)) : nil }
    }

    init(_ buffer: ByteBuffer) throws {
        let bytes = Array(buffer.readableBytesView)
        let crlf: [UInt8] = [13, 10]
        guard let headEnd = Self.find([13, 10, 13, 10], in: bytes, from: 0) else { throw Malformed(description: "no end of head") }
        head = String(decoding: bytes[..<headEnd], as: UTF8.self)
        guard head.lowercased().contains("transfer-encoding: chunked") else { throw Malformed(description: "not chunked: \(head)") }
        var at = headEnd + 4
        chunks = []
        ended = false
        while at < bytes.count {
            guard let lineEnd = Self.find(crlf, in: bytes, from: at) else {
                throw Malformed(description: "a size line without CRLF at \(at)")
            }
            let line = String(decoding: bytes[at..<lineEnd], as: UTF8.self)
            guard let size = Int(line, radix: 16) else { throw Malformed(description: "not a chunk size at \(at): \(line.prefix(40))") }
            at = lineEnd + 2
            guard at + size + 2 <= bytes.count else { throw Malformed(description: "a chunk of \(size) bytes cut short at \(at)") }
            guard Array(bytes[(at + size)..<(at + size + 2)]) == crlf else {
                throw Malformed(description: "a chunk of \(size) bytes at \(at) not followed by CRLF")
            }
            if size == 0 {
                ended = true
                at += 2
                guard at == bytes.count else { throw Malformed(description: "bytes after the last chunk") }
                break
            }
            chunks.append(String(decoding: bytes[at..<(at + size)], as: UTF8.self))
            at += size + 2
        }
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        for index in start...(bytes.count - needle.count) where bytes[index..<(index + needle.count)].elementsEqual(needle) {
            return index
        }
        return nil
    }
}
