import NIOCore
import PostgresNIO
import Synchronization

/// Guards work on one PostgreSQL connection against the connection closing under it.
///
/// PostgresNIO answers a statement written to a connection that has already closed with
/// nothing at all: the caller would wait forever (a transaction whose server restarted
/// between two statements, a pool shut down under a running query). Work run through the
/// watch fails with `DatabaseUnavailable` as soon as the connection closes instead; the
/// abandoned statement, if it ever wakes, finds nobody waiting.
///
/// One watch per connection, registered once on its close future, so using it for every
/// statement adds no callbacks to that future.
public final class ConnectionWatch: Sendable {
    private struct State {
        var closed = false
        var nextToken: UInt64 = 0
        var waiting: [UInt64: @Sendable () -> Void] = [:]
    }
    private let state = Mutex(State())

    public init(closeFuture: EventLoopFuture<Void>) {
        closeFuture.whenComplete { _ in self.connectionClosed() }
    }

    public convenience init(_ connection: PostgresConnection) {
        self.init(closeFuture: connection.closeFuture)
    }

    public var isClosed: Bool { state.withLock { $0.closed } }

    private func connectionClosed() {
        let failers = state.withLock { state -> [@Sendable () -> Void] in
            state.closed = true
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for fail in failers { fail() }
    }

    /// Calls `fail` if the connection closes before `unregister`; nil if it already has.
    private func register(_ fail: @escaping @Sendable () -> Void) -> UInt64? {
        state.withLock { state in
            guard !state.closed else { return nil }
            let token = state.nextToken
            state.nextToken &+= 1
            state.waiting[token] = fail
            return token
        }
    }

    private func unregister(_ token: UInt64) {
        _ = state.withLock { $0.waiting.removeValue(forKey: token) }
    }

    /// Runs `body`; returns its result, or throws `DatabaseUnavailable` if the connection
    /// closes first. Cancelling the caller cancels `body`.
    public func run<Result: Sendable>(_ body: @escaping @Sendable () async throws -> Result) async throws -> Result {
        let outcome = Outcome<Result>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
                outcome.set(continuation)
                let token = register {
                    outcome.resume(.failure(DatabaseUnavailable(reason: "the connection closed during the statement")))
                }
                guard let token else {
                    outcome.resume(.failure(DatabaseUnavailable(reason: "the connection is closed")))
                    return
                }
                outcome.attach(
                    Task {
                        let result: Swift.Result<Result, any Error>
                        do { result = .success(try await body()) } catch { result = .failure(error) }
                        self.unregister(token)
                        outcome.resume(result)
                    })
            }
        } onCancel: {
            outcome.cancel()
        }
    }
}

/// The one answer a guarded run gives, whichever of its work or the connection's close
/// (or, for a lease, its deadline) comes first; the work task, so cancelling the caller
/// reaches it.
final class Outcome<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value, any Error>?
        var work: Task<Void, Never>?
        var cancelled = false
    }
    private let state = Mutex(State())

    func set(_ continuation: CheckedContinuation<Value, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    /// Keeps the work task, cancelling it at once if the caller was cancelled first.
    func attach(_ work: Task<Void, Never>) {
        let cancelNow = state.withLock { state -> Bool in
            state.work = work
            return state.cancelled
        }
        if cancelNow { work.cancel() }
    }

    func resume(_ result: Result<Value, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(with: result)
    }

    func cancel() {
        let work = state.withLock { state -> Task<Void, Never>? in
            state.cancelled = true
            return state.work
        }
        work?.cancel()
    }
}
