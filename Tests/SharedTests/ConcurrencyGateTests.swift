import Synchronization
import TestSupport
import Testing

/// The gate that keeps the tests' databases (and so their connections) within what the test
/// cluster takes: never more holders than its limit, waiters in order, a cancelled waiter gone.
@Suite(.timeLimit(.minutes(1))) struct ConcurrencyGateTests {
    @Test func neverMoreHoldersThanTheLimitAndWaitersGoInOrder() async throws {
        let gate = ConcurrencyGate(limit: 3)
        let counts = Counts()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<12 {
                group.addTask {
                    try await gate.run {
                        counts.withLock {
                            $0.inside += 1
                            $0.most = max($0.most, $0.inside)
                            $0.order.append(index)
                        }
                        try await Task.sleep(for: .milliseconds(20))
                        counts.withLock { $0.inside -= 1 }
                    }
                }
                // Each task is waiting (or inside) before the next one starts.
                while gate.snapshot.waiting + counts.withLock({ $0.order.count }) != index + 1 {
                    await Task.yield()
                }
            }
            try await group.waitForAll()
        }
        let result = counts.withLock { $0 }
        #expect(result.most == 3)
        #expect(result.order == Array(0..<12))
        #expect(gate.snapshot.free == 3 && gate.snapshot.waiting == 0)
    }

    @Test func aCancelledWaiterThrowsAndTakesNoPlace() async throws {
        let gate = ConcurrencyGate(limit: 1)
        let release = AsyncStream<Void>.makeStream()
        let holder = Task { try await gate.run { for await _ in release.stream { break } } }
        while gate.snapshot.free != 0 { await Task.yield() }
        let waiter = Task { try await gate.run { "entered" } }
        while gate.snapshot.waiting != 1 { await Task.yield() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(gate.snapshot.waiting == 0)
        release.continuation.yield()
        try await holder.value
        // The place the holder frees goes back to the gate, not to the cancelled waiter.
        #expect(gate.snapshot.free == 1)
        let entered = try await gate.run { "entered" }
        #expect(entered == "entered")
    }
}

/// Holders inside at once, the most there ever were, and the order they came in.
private final class Counts: Sendable {
    private let state = Mutex((inside: 0, most: 0, order: [Int]()))

    func withLock<T>(_ body: (inout (inside: Int, most: Int, order: [Int])) -> T) -> T {
        state.withLock { body(&$0) }
    }
}
