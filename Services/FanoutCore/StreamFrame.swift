import Foundation
import NIOCore

/// One piece of a stream: an event from the log (its id, when it was logged and, for an event
/// that carries the whole state of one thing, which thing) or a comment.
public struct StreamFrame: Sendable {
    public let id: Int64?
    public let bytes: ByteBuffer
    /// When the event was appended to the log, for the delivery-lag histogram.
    public let loggedAt: Date?
    /// Frames with the same key each carry the whole state of one thing (`availability.updated`
    /// of one session): a reader who is behind needs only the newest. nil: never dropped.
    public let conflationKey: String?

    public init(id: Int64?, bytes: ByteBuffer, loggedAt: Date? = nil, conflationKey: String? = nil) {
        self.id = id
        self.bytes = bytes
        self.loggedAt = loggedAt
        self.conflationKey = conflationKey
    }
}
