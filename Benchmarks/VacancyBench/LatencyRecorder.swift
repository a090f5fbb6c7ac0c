import Histogram
import Synchronization

/// Collects latencies (microseconds) and outcome counts from many concurrent tasks.
final class LatencyRecorder: Sendable {
    private struct State {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var outcomes: [String: Int] = [:]
    }
    private let state = Mutex(State())

    func record(microseconds: UInt64, outcome: String) {
        state.withLock { state in
            _ = state.histogram.record(max(1, microseconds))
            state.outcomes[outcome, default: 0] += 1
        }
    }

    func reset() {
        state.withLock { $0 = State() }
    }

    struct Summary: Sendable, Codable {
        var count: UInt64
        /// The fastest and the 1st percentile: where the distribution starts, which splits a
        /// fixed delay from a spread over the subscribers.
        var minMilliseconds: Double
        var p1Milliseconds: Double
        var p50Milliseconds: Double
        var p99Milliseconds: Double
        var p999Milliseconds: Double
        var maxMilliseconds: Double
        var outcomes: [String: Int]
    }

    func summary() -> Summary {
        state.withLock { Summary(histogram: $0.histogram, outcomes: $0.outcomes) }
    }
}

extension LatencyRecorder.Summary {
    /// The figures of a histogram of microseconds.
    init(histogram h: Histogram<UInt64>, outcomes: [String: Int] = [:]) {
        self.init(
            count: h.totalCount,
            minMilliseconds: Double(h.totalCount > 0 ? h.min : 0) / 1000,
            p1Milliseconds: Double(h.valueAtPercentile(1)) / 1000,
            p50Milliseconds: Double(h.valueAtPercentile(50)) / 1000,
            p99Milliseconds: Double(h.valueAtPercentile(99)) / 1000,
            p999Milliseconds: Double(h.valueAtPercentile(99.9)) / 1000,
            maxMilliseconds: Double(h.max) / 1000,
            outcomes: outcomes
        )
    }
}
