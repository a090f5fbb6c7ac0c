import FanoutCore
import Foundation
import Logging
import ServiceLifecycle
import Shared

#if canImport(Glibc)
    import Glibc
#endif

/// Gives memory freed by closed streams back to the system once a surge of subscribers
/// opening or closing has settled.
///
/// Opening a stream allocates short-lived objects (request parsing, TLS and HTTP/2 frames)
/// between the long-lived ones that hold it open. glibc's malloc returns memory to the
/// system only from the top of a heap, so after a surge the holes they left stay resident:
/// a process that once held 10,000 streams keeps their memory after they close, and one
/// that holds them shows more than their live size. `malloc_trim` releases every free
/// page, in every arena; it takes a few milliseconds for a heap of 100 MB.
///
/// It runs off the event loops, when at least `minimumChurn` streams opened or closed since
/// the last run and fewer than a tenth of that in the last second (the surge is over), and
/// at most once per `interval`.
struct MemoryReleaser: Service {
    let hub: Hub
    let interval: Duration
    let minimumChurn: Int
    let metrics: AppMetrics
    let logger: Logger

    func run() async throws {
        guard interval > .zero, let trim = Self.mallocTrim else { return }
        let trims = metrics.counter("vacancy_fanout_memory_trims_total")
        await cancelWhenGracefulShutdown {
            var churnAtLastTrim = hub.churn
            var churnAtLastLook = churnAtLastTrim
            var lastTrim = ContinuousClock.now - interval
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let churn = hub.churn
                defer { churnAtLastLook = churn }
                guard churn - churnAtLastTrim >= minimumChurn, churn - churnAtLastLook < max(1, minimumChurn / 10),
                    ContinuousClock.now - lastTrim >= interval
                else { continue }
                churnAtLastTrim = churn
                lastTrim = ContinuousClock.now
                let before = Self.residentBytes()
                _ = trim(0)
                let took = ContinuousClock.now - lastTrim
                trims.increment()
                logger.debug(
                    "released free memory",
                    metadata: [
                        "resident_before_kib": "\(before / 1024)", "resident_after_kib": "\(Self.residentBytes() / 1024)",
                        "duration_ms": "\(took.components.seconds * 1000 + took.components.attoseconds / 1_000_000_000_000_000)",
                        "subscribers": "\(hub.count)",
                    ])
            }
        }
    }

    /// glibc's `malloc_trim`, looked up at run time (Swift's Glibc module does not export
    /// `malloc.h`); nil on another C library, where the releaser does nothing.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
            guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "malloc_trim") else { return nil }
            return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
            return nil
        #endif
    }()

    /// Resident set size, from /proc/self/statm (0 where there is none).
    static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
