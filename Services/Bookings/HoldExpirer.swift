import Logging
import Metrics
import ServiceLifecycle
import Shared

/// Expires holds whose time is up, about once a second, and prunes old idempotency
/// records now and then. Every bookings instance runs one; `SKIP LOCKED` keeps them apart.
struct HoldExpirer: Service {
    let database: Database
    let ledger: SeatLedger
    let idempotency: IdempotencyStore
    let notifier: ChangeNotifier
    let interval: Duration
    let logger: Logger
    private let expired: Counter

    init(
        database: Database, ledger: SeatLedger, idempotency: IdempotencyStore, notifier: ChangeNotifier, interval: Duration,
        metrics: AppMetrics, logger: Logger
    ) {
        self.expired = metrics.counter("vacancy_holds_expired_total")
        self.database = database
        self.ledger = ledger
        self.idempotency = idempotency
        self.notifier = notifier
        self.interval = interval
        self.logger = logger
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var ticks = 0
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
                ticks += 1
                await sweep(pruneKeys: ticks % 600 == 1)
            }
        }
    }

    /// One pass: expire every due hold (in batches), close the lines of sessions that have
    /// started, then maybe prune idempotency keys.
    func sweep(pruneKeys: Bool = false) async {
        do {
            var total = 0
            while true {
                let count = try await database.transaction { connection in
                    try await ledger.expireHolds(on: connection)
                }
                total += count
                if count < 500 { break }
            }
            if total > 0 {
                expired.increment(by: total)
                notifier.signal()
                logger.info("holds expired", metadata: ["count": "\(total)"])
            }
            let closed = try await database.transaction { connection in try await WaitingLine.closeStarted(on: connection) }
            if closed > 0 {
                notifier.signal()
                logger.info("waitlist entries of started sessions expired", metadata: ["count": "\(closed)"])
            }
            if pruneKeys {
                try await database.withConnection { connection in try await idempotency.prune(on: connection) }
            }
        } catch {
            logger.warning("hold sweep failed; retrying next tick", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}
