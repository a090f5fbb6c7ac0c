import Logging
import Metrics
import ServiceLifecycle
import Shared

/// Wakes the calculator with `NOTIFY vacancy_changes` after changes commit, outside the
/// booking transactions: NOTIFY takes a cluster-wide lock at commit, so it is sent by one
/// task, at most one at a time, and every signal that arrives meanwhile folds into the next
/// one. A lost wake-up costs only the calculator's poll interval.
struct ChangeNotifier: Service {
    static let channel = "vacancy_changes"

    let database: Database
    let enabled: Bool
    let logger: Logger
    private let signals: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let sent: Counter

    init(database: Database, enabled: Bool, metrics: AppMetrics, logger: Logger) {
        self.sent = metrics.counter("vacancy_change_notifies_total")
        self.database = database
        self.enabled = enabled
        self.logger = logger
        (signals, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks for a wake-up; returns at once.
    func signal() {
        guard enabled else { return }
        continuation.yield()
    }

    func run() async throws {
        guard enabled else {
            // A service that returns early stops the whole group: idle until shutdown.
            logger.info("change NOTIFY disabled; the calculator relies on its poll")
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                do {
                    _ = try await database.query("NOTIFY vacancy_changes")
                    sent.increment()
                } catch {
                    logger.debug("NOTIFY failed; the calculator's poll will catch up", metadata: ["error": "\(String(reflecting: error))"])
                }
            }
        }
    }
}
