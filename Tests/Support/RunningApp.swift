import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Runs an application on an ephemeral port for the length of `body`, then shuts it down
/// gracefully, as SIGTERM does in production. Cancelling a serving task instead can trap in
/// NIO when a connection was accepted but not yet served ("Deinited NIOAsyncWriter without
/// calling finish()", apple/swift-nio#3481): it happened to the browser test, whose page
/// reconnects at the moment its fan-out stops, and once to a test whose body threw while
/// hundreds of its requests were in flight (the trap hid the error). Cancellation is only
/// the fallback, after 5 s (or at once when the test itself is cancelled, which cancels the
/// app's task with it).
/// `makeApp` receives the `onServerRunning` callback to wire into the application.
public func withRunningApp<App: ApplicationProtocol, T: Sendable>(
    _ makeApp: (@escaping @Sendable (any Channel) async -> Void) -> App,
    _ body: @Sendable (_ baseURL: String) async throws -> T
) async throws -> T {
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = makeApp { channel in
        continuation.yield(channel.localAddress?.port ?? 0)
        continuation.finish()
    }
    let services = ServiceGroup(
        configuration: .init(services: [app], gracefulShutdownSignals: [], logger: Logger(label: "vacancy.test.app")))
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await services.run()
            continuation.finish()
            return nil
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            // The app stopped before it listened: surface its error.
            while (try await group.next()) != nil {}
            throw AppDidNotStart()
        }
        // A failing body stops the app the same way, so the failure is reported as one and
        // does not become NIO's trap, which ends the whole test run.
        let result: Result<T, any Error>
        do {
            result = .success(try await body("http://127.0.0.1:\(port)"))
        } catch {
            result = .failure(error)
        }
        await services.triggerGracefulShutdown()
        group.addTask {
            try? await Task.sleep(for: .seconds(5))
            return nil
        }
        // The app's task ends first when it shuts down in time; the timer's ends it otherwise.
        _ = try? await group.next()
        group.cancelAll()
        while (try? await group.next()) != nil {}
        return try result.get()
    }
}

public struct AppDidNotStart: Error {}

extension Task where Failure == any Error {
    /// The task's value, or `TimedOut` if it has none within `limit` (the task is left
    /// running): for checks whose failure mode is waiting forever.
    public func value(within limit: Duration) async throws -> Success {
        let once = ResumeOnce<Success>()
        return try await withCheckedThrowingContinuation { continuation in
            once.set(continuation)
            Task<Void, Never> { once.resume(await self.result) }
            Task<Void, Never> {
                try? await Task<Never, Never>.sleep(for: limit)
                once.resume(.failure(TimedOut(limit: limit)))
            }
        }
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public let limit: Duration
    public var description: String { "no answer within \(limit)" }
}

private final class ResumeOnce<Value: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<Value, any Error>?>(nil)
    func set(_ value: CheckedContinuation<Value, any Error>) { continuation.withLock { $0 = value } }
    func resume(_ result: Result<Value, any Error>) {
        let taken = continuation.withLock { value -> CheckedContinuation<Value, any Error>? in
            defer { value = nil }
            return value
        }
        taken?.resume(with: result)
    }
}
