import Foundation
import Synchronization

/// Delivery lags (log append → written to a stream) since the last `metrics` event, in
/// fixed buckets, so the `admin` stream can say what the p99 was over that interval; the
/// Prometheus histogram (`vacancy_fanout_delivery_lag_seconds`) keeps the totals.
public final class DeliveryLagWindow: Sendable {
    /// Upper bounds of the buckets, in milliseconds; a lag past the last is counted above it.
    public static let bounds: [Double] = [
        1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000, 3000, 5000, 10_000,
    ]

    private let counts = Mutex([Int](repeating: 0, count: DeliveryLagWindow.bounds.count + 1))

    public init() {}

    public func record(seconds: TimeInterval) {
        let milliseconds = seconds * 1000
        let bucket = Self.bounds.firstIndex { milliseconds <= $0 } ?? Self.bounds.count
        counts.withLock { $0[bucket] += 1 }
    }

    /// The 99th percentile of the lags recorded since the last call (the upper bound of its
    /// bucket, in milliseconds; nil when nothing was delivered), and a fresh interval.
    public func takeP99() -> Double? {
        let taken = counts.withLock { counts in
            defer { counts = [Int](repeating: 0, count: counts.count) }
            return counts
        }
        let total = taken.reduce(0, +)
        guard total > 0 else { return nil }
        let rank = Int((Double(total) * 0.99).rounded(.up))
        var seen = 0
        for (bucket, count) in taken.enumerated() {
            seen += count
            if seen >= rank { return bucket < Self.bounds.count ? Self.bounds[bucket] : Self.bounds.last! * 2 }
        }
        return nil
    }
}
