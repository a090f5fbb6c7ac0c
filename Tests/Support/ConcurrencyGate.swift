import Synchronization

/// At most `limit` holders at a time; the rest wait their turn in order. The tests run all at
/// once, and each holds a database with its services' pools: the gate keeps their
/// connections within what the test cluster takes (`max_connections`), however slow the
/// machine makes each test. A waiter whose task is cancelled stops waiting and throws.
public final class ConcurrencyGate: Sendable {
    private struct State {
        var free: Int
        var nextTicket: UInt64 = 0
        var waiting: [(ticket: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    }

    private let state: Mutex<State>

    public init(limit: Int) {
        precondition(limit > 0, "a gate lets at least one through")
        state = Mutex(State(free: limit))
    }

    /// Runs `body` once a place is free, and frees it afterwards.
    public func run<T>(_ body: () async throws -> T) async throws -> T {
        try await enter()
        defer { leave() }
        return try await body()
    }

    private func enter() async throws {
        let ticket = state.withLock { state -> UInt64? in
            if state.free > 0 {
                state.free -= 1
                return nil
            }
            state.nextTicket &+= 1
            return state.nextTicket
        }
        guard let ticket else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { state in
                    if Task.isCancelled { return true }
                    state.waiting.append((ticket, continuation))
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let continuation = state.withLock { state in
                state.waiting.firstIndex { $0.ticket == ticket }.map { state.waiting.remove(at: $0).continuation }
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    private func leave() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            if state.waiting.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume()
    }

    /// Places free right now, and callers waiting for one (for tests of the gate itself).
    public var snapshot: (free: Int, waiting: Int) {
        state.withLock { ($0.free, $0.waiting.count) }
    }
}
