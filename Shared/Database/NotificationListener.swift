import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// LISTENs on one channel over a connection of its own and raises `signal` on every
/// notification. PostgresNIO's listen does not reconnect, so this does: after any break it
/// waits a moment, connects again, and raises the signal once so the owner catches up from
/// its tables (notifications sent while it was away are gone).
public struct NotificationListener: Service {
    public let channel: String
    public let url: DatabaseURL
    public let signal: WakeSignal
    public let logger: Logger
    /// Whether the LISTEN is in place right now (for `/readyz`).
    public let status: StatusFlag

    public init(channel: String, url: DatabaseURL, signal: WakeSignal, logger: Logger) {
        self.channel = channel
        self.url = url
        self.signal = signal
        self.logger = logger
        self.status = StatusFlag()
    }

    private func listen(on connection: PostgresConnection) async throws {
        try await connection.listen(on: channel) { notifications in
            status.set(true)
            // Anything sent before the LISTEN took effect is read from the tables.
            signal.raise()
            for try await _ in notifications { signal.raise() }
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var delay = Duration.milliseconds(100)
            while !Task.isCancelled {
                do {
                    try await url.withConnection(logger: .vacancyQuiet) { connection in
                        delay = .milliseconds(100)
                        // A LISTEN started as the connection closes can be left unanswered.
                        try await ConnectionWatch(connection).run { try await listen(on: connection) }
                    }
                } catch {
                    if Task.isCancelled { break }
                    logger.warning(
                        "listener lost; reconnecting", metadata: ["channel": "\(channel)", "error": "\(String(reflecting: error))"])
                }
                status.set(false)
                signal.raise()
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
            status.set(false)
        }
    }
}

/// A yes/no state one task sets and others read (a listener is connected, this instance leads).
public final class StatusFlag: Sendable {
    private let value = Mutex(false)
    public init() {}
    public func set(_ up: Bool) { value.withLock { $0 = up } }
    public var isUp: Bool { value.withLock { $0 } }
}
