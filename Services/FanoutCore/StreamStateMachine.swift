import NIOCore

/// One event stream's life as a plain value: what happens to the stream comes in as calls,
/// what to do about it goes out as an `Action`, and nothing here does I/O. It runs on the
/// stream's event loop; the caller performs the actions.
///
/// ```
/// registered ──attached──▶ replaying ──historyLoaded──▶ live ──finish──▶ draining ──channelClosed──▶ closed
///      │                       │                          │                                        ▲
///      └───────────────────────┴── channelClosed, historyFailed, a backlog past its bounds ────────┘
/// ```
///
/// While the channel cannot take more (or the history is still being read) frames wait in a
/// `Backlog`, conflated past `Limits.conflateAtBytes` or `conflateAtFrames`, and go to the
/// channel at most `writeChunkBytes` at a time as it takes them, so that what a slow reader
/// is behind by stays here, where it can still be conflated, not in the channel's buffer.
/// A slow reader is conflated; a stuck one is cut (`abort`): when what remains still passes
/// `maximumFrames` or `maximumBytes`, or its channel has taken nothing for `stallTimeout`
/// while frames wait. The client then resumes by `Last-Event-ID`.
public struct StreamStateMachine: Sendable {
    public struct Limits: Sendable {
        public var maximumFrames: Int
        public var maximumBytes: Int
        /// Where the backlog starts being conflated (below the maximums; half of each by default).
        public var conflateAtBytes: Int
        public var conflateAtFrames: Int
        /// At most this much of the backlog goes to the channel at once (always one frame).
        public var writeChunkBytes: Int
        /// A stream whose channel stays unwritable this long while frames wait for it is cut.
        public var stallTimeout: TimeAmount

        /// Conflation starts at 64 KiB or 256 frames waiting, or half the maximums if lower.
        public init(
            maximumFrames: Int, maximumBytes: Int, conflateAtBytes: Int? = nil, conflateAtFrames: Int? = nil,
            writeChunkBytes: Int = 64 << 10, stallTimeout: TimeAmount = .seconds(20)
        ) {
            self.maximumFrames = maximumFrames
            self.maximumBytes = maximumBytes
            self.conflateAtBytes = conflateAtBytes ?? min(64 << 10, maximumBytes / 2)
            self.conflateAtFrames = conflateAtFrames ?? max(1, min(256, maximumFrames / 2))
            self.writeChunkBytes = writeChunkBytes
            self.stallTimeout = stallTimeout
        }
    }

    public enum State: Sendable, Equatable {
        /// Accepted; no channel handler yet.
        case registered
        /// Attached to its channel; the history is being read, live frames wait.
        case replaying
        /// The head and history are written; frames go to the channel as it takes them.
        case live
        /// The end is written; waiting for the channel to close.
        case draining
        case closed
    }

    public enum Action: Sendable {
        case none
        /// Write these frames (one body part) and flush.
        case write([StreamFrame])
        /// Write the response head, then these frames, and flush.
        case start([StreamFrame])
        /// Write these frames (`start`: after the response head), end the response and close the channel.
        case writeAndEnd([StreamFrame], start: Bool)
        /// Answer with a problem instead of a stream, and close.
        case refuse
        /// Cut the connection: the reader fell behind past what may wait for it, or stopped taking anything.
        case abort(AbortReason)
    }

    public enum AbortReason: String, Sendable {
        /// What waits, conflated, still passes `maximumFrames` or `maximumBytes`.
        case backlogFull = "backlog_full"
        /// The channel took nothing for `stallTimeout` while frames waited.
        case stalled
    }

    public private(set) var state = State.registered
    private var backlog: Backlog
    private let limits: Limits
    /// The newest event id written (or the id the history ended at): anything at or below it is a duplicate.
    public private(set) var lastWritten: Int64 = 0
    /// Asked to end before it was live: ends as soon as the history is written, with this last.
    private var pendingEnd: (final: StreamFrame?, asked: Bool) = (nil, false)
    /// Frames conflation dropped since the last `takeCoalesced()`.
    private var coalesced = 0
    /// Since when the channel has taken nothing (unwritable) while live; nil while it takes more.
    private var blockedSince: NIODeadline?

    public init(limits: Limits) {
        self.limits = limits
        backlog = Backlog(conflateAt: limits.conflateAtBytes, frames: limits.conflateAtFrames)
    }

    /// How many frames are waiting, and their bytes.
    public var waiting: (frames: Int, bytes: Int) { (backlog.count, backlog.bytes) }

    /// Whether frames wait that a writable channel would take now (`writabilityChanged(true)`).
    public var hasWaiting: Bool { state == .live && !backlog.isEmpty }

    /// The frames conflation dropped since the last call (for `vacancy_fanout_coalesced_events_total`).
    public mutating func takeCoalesced() -> Int {
        defer { coalesced = 0 }
        return coalesced
    }

    /// The stream's channel handler is in place; the history is read next.
    public mutating func attached() {
        guard state == .registered else { return }
        state = .replaying
    }

    /// The history is read: the head, `history`, then what arrived meanwhile (events at or
    /// before `after` dropped by id). Ends at once if `finish` came first.
    public mutating func historyLoaded(_ history: [StreamFrame], after: Int64) -> Action {
        guard state == .replaying || state == .registered else { return .none }
        lastWritten = max(lastWritten, after)
        var frames = fresh(history)
        frames += fresh(backlog.takeAll())
        if pendingEnd.asked {
            if let final = pendingEnd.final { frames.append(final) }
            state = .draining
            return .writeAndEnd(frames, start: true)
        }
        state = .live
        return .start(frames)
    }

    /// The history could not be read.
    public mutating func historyFailed() -> Action {
        guard state == .replaying || state == .registered else { return .none }
        close()
        return .refuse
    }

    /// A frame for this stream; `writable`: whether its channel takes more now.
    public mutating func push(_ frame: StreamFrame, writable: Bool, now: NIODeadline = .now()) -> Action {
        receive([frame], writable: writable, now: now)
    }

    /// The frames handed to this stream since the last dispatch, in order; `writable`:
    /// whether its channel takes more now. Live, writable, with nothing waiting and no more
    /// than a chunk, they are written at once; otherwise they wait behind what waits
    /// (conflated past the threshold) and the oldest chunk goes if the channel takes it.
    /// While the channel takes nothing they wait, and a stream it has taken nothing from for
    /// the stall timeout is cut.
    public mutating func receive(_ frames: [StreamFrame], writable: Bool, now: NIODeadline) -> Action {
        switch state {
        case .registered, .replaying:
            return stage(frames)
        case .live:
            guard writable else {
                if let since = blockedSince, now - since >= limits.stallTimeout { return abort(.stalled) }
                if blockedSince == nil { blockedSince = now }
                return stage(frames)
            }
            blockedSince = nil
            if backlog.isEmpty, frames.count < limits.conflateAtFrames, Self.bytes(of: frames) <= limits.writeChunkBytes {
                let fresh = fresh(frames)
                return fresh.isEmpty ? .none : .write(fresh)
            }
            // Whatever still waits goes first: behind it, conflated with it.
            let action = stage(frames)
            if case .abort = action { return action }
            return nextChunk()
        case .draining, .closed:
            return .none
        }
    }

    /// The channel's writability changed: once it takes more, the next chunk of what waits is
    /// written (call again while the channel stays writable and `hasWaiting`).
    public mutating func writabilityChanged(_ writable: Bool, now: NIODeadline = .now()) -> Action {
        guard state == .live else { return .none }
        guard writable else {
            if blockedSince == nil { blockedSince = now }
            return .none
        }
        blockedSince = nil
        return nextChunk()
    }

    /// Ends the stream after what waits, with `final` last (a token that expired, a shutdown,
    /// a history that changed). Before it is live, it ends right after its history.
    public mutating func finish(final: StreamFrame?) -> Action {
        switch state {
        case .registered, .replaying:
            pendingEnd = (final, true)
            return .none
        case .live:
            var frames = fresh(backlog.takeAll())
            if let final { frames.append(final) }
            state = .draining
            return .writeAndEnd(frames, start: false)
        case .draining, .closed:
            return .none
        }
    }

    /// The channel went away (the client closed, reset or timed out, or the end was written).
    /// Returns whether the stream was still open (its owner lets it go now).
    public mutating func channelClosed() -> Bool {
        guard state != .closed else { return false }
        close()
        return true
    }

    // MARK: Private

    private mutating func stage(_ frame: StreamFrame) -> Action {
        coalesced += backlog.append(frame)
        guard backlog.count <= limits.maximumFrames, backlog.bytes <= limits.maximumBytes else { return abort(.backlogFull) }
        return .none
    }

    private mutating func stage(_ frames: [StreamFrame]) -> Action {
        for frame in frames {
            let action = stage(frame)
            if case .abort = action { return action }
        }
        return .none
    }

    private static func bytes(of frames: [StreamFrame]) -> Int {
        frames.reduce(0) { $0 + $1.bytes.readableBytes }
    }

    private mutating func abort(_ reason: AbortReason) -> Action {
        close()
        return .abort(reason)
    }

    /// The oldest frames that wait, up to `writeChunkBytes`, without those already written.
    private mutating func nextChunk() -> Action {
        while !backlog.isEmpty {
            let frames = fresh(backlog.take(upToBytes: limits.writeChunkBytes))
            if !frames.isEmpty { return .write(frames) }
        }
        return .none
    }

    /// `frames` without those at or below the last id written (a subscriber of several of an
    /// event's topics is handed it more than once), advancing the last id written.
    private mutating func fresh(_ frames: [StreamFrame]) -> [StreamFrame] {
        // Mostly every frame is new: then `frames` itself is the answer, with no copy.
        var newest = lastWritten
        var allNew = true
        for frame in frames {
            guard let id = frame.id else { continue }
            guard id > newest else {
                allNew = false
                break
            }
            newest = id
        }
        if allNew {
            lastWritten = newest
            return frames
        }
        var kept: [StreamFrame] = []
        kept.reserveCapacity(frames.count)
        for frame in frames {
            if let id = frame.id {
                guard id > lastWritten else { continue }
                lastWritten = id
            }
            kept.append(frame)
        }
        return kept
    }

    private mutating func close() {
        state = .closed
        blockedSince = nil
        backlog.removeAll()
        pendingEnd = (nil, false)
    }
}
