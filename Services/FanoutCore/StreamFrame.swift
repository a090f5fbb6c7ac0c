import Foundation
import NIOCore

/// One piece of a stream: an event from the log (its id, when it was logged and, for an event
/// that carries the whole state of one thing, which thing) or a comment. Made once and shared
/// by every stream it goes to, so handing it on costs one reference.
public final class StreamFrame: Sendable {
    public let id: Int64?
    /// The Server-Sent Events bytes (an HTTP/2 stream's DATA).
    public let bytes: ByteBuffer
    /// The same bytes framed as one HTTP/1.1 chunk (size line, bytes, CRLF), in the same
    /// storage: what an HTTP/1.1 stream writes below the HTTP encoder, without framing each
    /// delivery again. Empty when `bytes` is (an empty chunk would end the body).
    public let chunk: ByteBuffer
    /// When the event was appended to the log, for the delivery-lag histogram.
    public let loggedAt: Date?
    /// Frames with the same key each carry the whole state of one thing (`availability.updated`
    /// of one session): a reader who is behind needs only the newest. nil: never dropped.
    public let conflationKey: String?

    public init(id: Int64?, bytes: ByteBuffer, loggedAt: Date? = nil, conflationKey: String? = nil) {
        self.id = id
        self.loggedAt = loggedAt
        self.conflationKey = conflationKey
        let size = bytes.readableBytes
        guard size > 0 else {
            self.bytes = bytes
            chunk = bytes
            return
        }
        let sizeLine = String(size, radix: 16) + "\r\n"
        var chunk = ByteBufferAllocator().buffer(capacity: sizeLine.utf8.count + size + 2)
        chunk.writeString(sizeLine)
        let start = chunk.writerIndex
        chunk.writeImmutableBuffer(bytes)
        chunk.writeStaticString("\r\n")
        self.bytes = chunk.getSlice(at: start, length: size)!
        self.chunk = chunk
    }

    /// The same frame in storage of its own (for another event loop: see `FrameDispatch`).
    public func copy() -> StreamFrame {
        var bytes = ByteBufferAllocator().buffer(capacity: self.bytes.readableBytes)
        bytes.writeImmutableBuffer(self.bytes)
        return StreamFrame(id: id, bytes: bytes, loggedAt: loggedAt, conflationKey: conflationKey)
    }
}
