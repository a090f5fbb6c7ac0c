import Foundation
import NIOCore
import Shared
import Synchronization

/// One piece of a stream: an event from the log (with its id and commit time) or a comment.
struct Frame: Sendable {
    let id: Int64?
    let bytes: ByteBuffer
    /// When the event was appended to the log, for the delivery-lag histogram.
    let loggedAt: Date?

    static func comment(_ text: String) -> Frame {
        Frame(id: nil, bytes: ServerSentEvent.comment(text), loggedAt: nil)
    }
}

/// How a subscriber's stream reached its end.
enum StreamEnd: String, Sendable {
    /// Its buffer overflowed: closed at once, the client resumes by Last-Event-ID.
    case slowConsumer = "slow_consumer"
    case tokenExpired = "token_expired"
    case shutdown
}

/// A subscriber's bounded queue between the dispatcher and the task writing its stream.
/// Past `maximumFrames` or `maximumBytes` waiting, the stream is given up (`slowConsumer`).
final class Subscriber: Sendable {
    let id: Int
    let topics: [String]
    let transport: String
    let expiresAt: Date?
    let maximumFrames: Int
    let maximumBytes: Int
    /// Closes the connection (or HTTP/2 stream) under a writer stuck on a client that stopped reading.
    let abortConnection: @Sendable () -> Void

    private struct State {
        var queue = CircularBuffer<Frame>(initialCapacity: 4)
        var bytes = 0
        var lastQueuedID: Int64 = 0
        var waiter: CheckedContinuation<[Frame]?, Never>?
        var ending: StreamEnd?
        var aborted = false
    }
    private let state = Mutex(State())

    init(
        id: Int, topics: [String], transport: String, expiresAt: Date?, maximumFrames: Int, maximumBytes: Int,
        abortConnection: @escaping @Sendable () -> Void
    ) {
        self.id = id
        self.topics = topics
        self.transport = transport
        self.expiresAt = expiresAt
        self.maximumFrames = maximumFrames
        self.maximumBytes = maximumBytes
        self.abortConnection = abortConnection
    }

    enum PushResult {
        case queued, dropped, overflowed
    }

    /// Queues a frame; an event id at or below the last one queued is a duplicate (the
    /// subscriber follows several of the event's topics) and is dropped. A frame past the
    /// buffer's bounds gives the stream up.
    @discardableResult
    func push(_ frame: Frame) -> PushResult {
        let (waiter, result): (CheckedContinuation<[Frame]?, Never>?, PushResult) = state.withLock { state in
            guard state.ending == nil, !state.aborted else { return (nil, .dropped) }
            if let id = frame.id {
                guard id > state.lastQueuedID else { return (nil, .dropped) }
                state.lastQueuedID = id
            }
            if state.queue.count >= maximumFrames || state.bytes + frame.bytes.readableBytes > maximumBytes {
                state.aborted = true
                state.queue.removeAll()
                state.bytes = 0
                let waiter = state.waiter
                state.waiter = nil
                return (waiter, .overflowed)
            }
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, .queued)  // handed over directly below
            }
            state.queue.append(frame)
            state.bytes += frame.bytes.readableBytes
            return (nil, .queued)
        }
        switch result {
        case .overflowed:
            waiter?.resume(returning: nil)
            abortConnection()
        case .queued:
            waiter?.resume(returning: [frame])
        case .dropped:
            break
        }
        return result
    }

    /// Ends the stream after what is queued, with `final` written last.
    func finish(_ reason: StreamEnd, final: Frame? = nil) {
        let waiter: CheckedContinuation<[Frame]?, Never>? = state.withLock { state in
            guard state.ending == nil, !state.aborted else { return nil }
            state.ending = reason
            if let final { state.queue.append(final) }
            guard let waiter = state.waiter else { return nil }
            state.waiter = nil
            return waiter
        }
        guard let waiter else { return }
        let frames = takeAll()
        waiter.resume(returning: frames.isEmpty ? nil : frames)
    }

    /// The frames waiting, in order, waiting for one if there are none; nil once the stream has ended.
    func next() async -> [Frame]? {
        await withTaskCancellationHandler {
            await waitForFrames()
        } onCancel: {
            cancel()
        }
    }

    private func waitForFrames() async -> [Frame]? {
        await withCheckedContinuation { continuation in
            let ready: [Frame]?? = state.withLock { state in
                if state.aborted { return .some(nil) }
                if !state.queue.isEmpty {
                    let frames = Array(state.queue)
                    state.queue.removeAll(keepingCapacity: true)
                    state.bytes = 0
                    return .some(frames)
                }
                if state.ending != nil { return .some(nil) }
                state.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Wakes a waiting writer with nothing (its client has gone).
    func cancel() {
        let waiter: CheckedContinuation<[Frame]?, Never>? = state.withLock { state in
            state.aborted = true
            state.queue.removeAll()
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    private func takeAll() -> [Frame] {
        state.withLock { state in
            let frames = Array(state.queue)
            state.queue.removeAll()
            state.bytes = 0
            return frames
        }
    }
}
