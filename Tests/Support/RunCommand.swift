import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a command to completion with `posix_spawn` and `waitpid`; returns its exit status.
/// Standard output is discarded, or with `output` appended (with standard error) to that
/// file. (Foundation's `Process.waitUntilExit` can miss the exit of a child whose own
/// children outlive it, as `pg_ctl start` does.) The wait happens on a thread of its own:
/// the tests run side by side on a cooperative pool as wide as the machine's cores, and a
/// test blocking one of them would stall every other test's servers.
public func runCommand(_ arguments: [String], output: String? = nil) async throws -> Int32 {
    let pid = try spawn(arguments, output: output)
    return await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: waitForExit(pid)) }
    }
}

/// Runs `body`, then `cleanup` whether `body` threw or not (a `defer` that may await).
public func withCleanup<T: Sendable>(_ body: () async throws -> T, cleanup: () async -> Void) async throws -> T {
    let result: T
    do {
        result = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return result
}

private func spawn(_ arguments: [String], output: String?, environment: [String]? = nil) throws -> pid_t {
    var fileActions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fileActions)
    defer { posix_spawn_file_actions_destroy(&fileActions) }
    if let output {
        posix_spawn_file_actions_addopen(&fileActions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&fileActions, 1, 2)
    } else {
        posix_spawn_file_actions_addopen(&fileActions, 1, "/dev/null", O_WRONLY, 0)
    }
    closeInheritedDescriptors(&fileActions, from: 3)
    // The child starts with no signal blocked and SIGTERM and SIGINT at their defaults,
    // whatever the test process (which runs services' signal handling of its own) set up:
    // a child that inherited them blocked or ignored could not be stopped as a user stops it.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGTERM)
    sigaddset(&defaults, SIGINT)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup($0) } + [nil] }
    defer { for pointer in envp ?? [] { free(pointer) } }
    var pid: pid_t = 0
    let spawned =
        envp != nil
        ? posix_spawn(&pid, arguments[0], &fileActions, &attributes, &argv, &envp!)
        : posix_spawn(&pid, arguments[0], &fileActions, &attributes, &argv, environ)
    guard spawned == 0 else { throw SpawnError(code: spawned) }
    return pid
}

/// Has the child close every descriptor from `lowest` up, so it holds none of the test
/// process's sockets: a child holding one keeps it open after the test closes it (a
/// connection the fan-out resets stays up, since the reset happens only at the last
/// close), and a PostgreSQL started with a thousand inherited descriptors refuses to run
/// ("insufficient file descriptors"). glibc 2.34's posix_spawn_file_actions_addclosefrom_np,
/// which Swift's Glibc module does not declare.
func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t, from lowest: Int32) {
    if let closeFrom = addCloseFrom { _ = closeFrom(&actions, lowest) }
}

private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
private let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
    unsafeBitCast($0, to: AddCloseFrom.self)
}

/// Blocks until `pid` exits; its exit status, or 128 + the signal that ended it.
private func waitForExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    return exitStatus(status)
}

/// A `waitpid` status as a shell shows it: the exit status, or 128 + the signal.
private func exitStatus(_ status: Int32) -> Int32 {
    (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// A command left running, its output (with standard error) appended to `output` and
/// `environment` added to this process's. It starts as `runCommand` starts one: no signal
/// blocked, SIGTERM and SIGINT at their defaults, so it stops as it would for a user.
/// (Foundation's `Process` hands a child the spawning thread's blocked signals, and the
/// threads of Swift's cooperative pool block them all: such a child never sees SIGTERM and
/// outlives the test.)
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private let status = Mutex<Int32?>(nil)

    public init(_ arguments: [String], environment: [String: String] = [:], output: String) throws {
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        pid = try spawn(arguments, output: output, environment: merged.map { "\($0.key)=\($0.value)" })
    }

    /// Whether it still runs; once it has exited it is reaped and its status kept.
    public var isRunning: Bool {
        status.withLock { status in
            if status != nil { return false }
            var raw: Int32 = 0
            guard waitpid(pid, &raw, WNOHANG) == pid else { return true }
            status = exitStatus(raw)
            return false
        }
    }

    /// Its exit status (or 128 + the signal that ended it), once it has exited.
    public var terminationStatus: Int32? {
        _ = isRunning
        return status.withLock { $0 }
    }

    /// Sends `signal` unless it has already exited.
    public func send(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits up to `seconds` for it to exit; whether it did.
    public func waitForExit(seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        return !isRunning
    }

    /// Ends it: SIGTERM, then SIGKILL if it is still there after `grace` seconds; reaped.
    public func stop(grace seconds: Double = 5) async {
        send(SIGTERM)
        if await waitForExit(seconds: seconds) { return }
        send(SIGKILL)
        _ = await waitForExit(seconds: 5)
    }
}

public struct SpawnError: Error {
    public let code: Int32
}
