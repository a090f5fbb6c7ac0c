import NIOCore

/// What waits for a stream's channel, in order, with its size in bytes. When it grows past a
/// threshold it is conflated: a frame is dropped only when a newer frame with the same key
/// follows it here, so ids stay increasing and the newest state of every thing is kept.
public struct Backlog: Sendable {
    public private(set) var frames = CircularBuffer<StreamFrame>(initialCapacity: 2)
    public private(set) var bytes = 0
    /// Conflated at this size in bytes or frames; after a conflation, not again before the
    /// backlog doubles (so frames that cannot be conflated cost amortised O(1) each).
    private var nextConflation: (bytes: Int, frames: Int)
    private let threshold: (bytes: Int, frames: Int)

    public init(conflateAt bytes: Int, frames: Int = .max) {
        threshold = (bytes, frames)
        nextConflation = threshold
    }

    public var isEmpty: Bool { frames.isEmpty }
    public var count: Int { frames.count }

    /// Adds a frame at the end; returns how many frames a conflation this caused dropped.
    public mutating func append(_ frame: StreamFrame) -> Int {
        frames.append(frame)
        bytes += frame.bytes.readableBytes
        guard bytes >= nextConflation.bytes || frames.count >= nextConflation.frames else { return 0 }
        let dropped = conflate()
        nextConflation = (max(threshold.bytes, 2 * bytes), max(threshold.frames, 2 * frames.count))
        return dropped
    }

    /// Takes everything, oldest first, and leaves the backlog empty.
    public mutating func takeAll() -> [StreamFrame] {
        defer { removeAll() }
        return Array(frames)
    }

    /// Takes the oldest frames whose bytes add up to at most `limit` (always at least one).
    public mutating func take(upToBytes limit: Int) -> [StreamFrame] {
        var taken: [StreamFrame] = []
        var size = 0
        while let first = frames.first, taken.isEmpty || size + first.bytes.readableBytes <= limit {
            frames.removeFirst()
            size += first.bytes.readableBytes
            taken.append(first)
        }
        bytes -= size
        if frames.isEmpty { removeAll() }
        return taken
    }

    public mutating func removeAll() {
        frames.removeAll(keepingCapacity: false)
        bytes = 0
        nextConflation = threshold
    }

    /// Drops every frame that a later frame with the same key replaces; returns how many.
    public mutating func conflate() -> Int {
        var newest = Set<String>()
        var kept: [StreamFrame] = []
        kept.reserveCapacity(frames.count)
        var dropped = 0
        for frame in frames.reversed() {
            if let key = frame.conflationKey, !newest.insert(key).inserted {
                dropped += 1
                bytes -= frame.bytes.readableBytes
                continue
            }
            kept.append(frame)
        }
        guard dropped > 0 else { return 0 }
        frames = CircularBuffer(kept.reversed())
        return dropped
    }
}
