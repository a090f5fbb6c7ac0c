import AsyncHTTPClient
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One Vacancy service running as its own process, as `make run` starts it: started,
/// killed with SIGKILL, stopped with SIGTERM and restarted by the resilience scenarios.
/// Its output is appended to `logPath`.
final class StackProcess: Sendable {
    let name: String
    let executable: String
    let environment: [String: String]
    let port: Int
    /// The address it listens on (`VACANCY_HOST`).
    let host: String
    let logPath: String
    private let pid = Mutex<pid_t>(0)
    /// How each exit that nobody asked for ended (`signal 4`, `exit 1`).
    private let crashes = Mutex<[String]>([])

    init(name: String, executable: String, environment: [String: String], port: Int, logPath: String, host: String = "127.0.0.1") {
        self.name = name
        self.executable = executable
        self.environment = environment
        self.port = port
        self.host = host
        self.logPath = logPath
    }

    var isRunning: Bool { pid.withLock { $0 != 0 } }
    var processID: pid_t { pid.withLock { $0 } }

    /// Resident memory now and at its peak since the process started, in KiB (`/proc/PID/status`).
    func memoryKiB() -> (resident: Int, peak: Int) {
        guard let status = try? String(contentsOfFile: "/proc/\(processID)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    func start() throws {
        let child = try Self.spawn(executable, arguments: [], environment: environment, outputPath: logPath, ownGroup: false)
        pid.withLock { $0 = child }
    }

    /// As a supervisor does (compose's `restart: unless-stopped`): if the process ended on
    /// its own, notes how and starts it again. A process this harness stops or kills is not
    /// seen here (the pid is taken and reaped under the same lock).
    func restartIfExited() throws {
        let ended: String? = pid.withLock { child in
            var status: Int32 = 0
            guard child != 0, waitpid(child, &status, WNOHANG) == child else { return nil }
            child = 0
            return (status & 0x7f) == 0 ? "exit \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
        }
        guard let ended else { return }
        crashes.withLock { $0.append(ended) }
        try start()
    }

    /// The exits nobody asked for since the last call, and clears them.
    func takeCrashes() -> [String] {
        crashes.withLock { crashes in
            defer { crashes = [] }
            return crashes
        }
    }

    /// Runs `command` with /bin/sh in a process group of its own (so nothing it signals
    /// reaches this process), output appended to `outputPath`; returns its exit status.
    static func runShell(_ command: String, outputPath: String) throws -> Int32 {
        let child = try spawn("/bin/sh", arguments: ["-c", command], environment: [:], outputPath: outputPath, ownGroup: true)
        var status: Int32 = 0
        while waitpid(child, &status, 0) == -1 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    private static func spawn(
        _ executable: String, arguments: [String], environment: [String: String], outputPath: String, ownGroup: Bool
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if ownGroup {
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        var envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer {
            for pointer in envp { free(pointer) }
            for pointer in argv { free(pointer) }
        }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, &argv, &envp)
        guard status == 0 else { throw ResilienceFailure("could not start \(executable): error \(status)") }
        return child
    }

    /// SIGKILL: no shutdown, no flushing, connections dropped mid-statement.
    func kill9() {
        signalAndReap(SIGKILL, grace: .zero)
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    func stop(grace: Duration = .seconds(10)) {
        signalAndReap(SIGTERM, grace: grace)
    }

    private func signalAndReap(_ signal: Int32, grace: Duration) {
        let child = pid.withLock { value in
            defer { value = 0 }
            return value
        }
        guard child != 0 else { return }
        kill(child, signal)
        var status: Int32 = 0
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if waitpid(child, &status, WNOHANG) == child { return }
            usleep(20_000)
        }
        kill(child, SIGKILL)
        while waitpid(child, &status, 0) == -1 && errno == EINTR {}
    }

    /// Waits until `/readyz` answers 200.
    /// Whether `/readyz` answers 200 now.
    func isReady(client: HTTPClient) async -> Bool {
        var request = HTTPClientRequest(url: "http://\(host):\(port)/readyz")
        request.headers.add(name: "Connection", value: "close")
        guard let response = try? await client.execute(request, timeout: .seconds(2)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 16)
        return response.status == .ok
    }

    func waitReady(client: HTTPClient, within limit: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            var request = HTTPClientRequest(url: "http://\(host):\(port)/readyz")
            request.headers.add(name: "Connection", value: "close")
            if let response = try? await client.execute(request, timeout: .seconds(2)) {
                _ = try? await response.body.collect(upTo: 1 << 16)
                if response.status == .ok { return }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ResilienceFailure("\(name) was not ready on port \(port) within \(limit) (see \(logPath))")
    }
}

struct ResilienceFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
