import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A real browser for tests: Debian's chromium, headless, driven over the DevTools
/// protocol on a pipe (`--remote-debugging-pipe`: commands on its fd 3, answers on fd 4,
/// each message JSON ended by a NUL byte), so no WebSocket client is needed.
public final class HeadlessBrowser: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static let executable = "/usr/bin/chromium"

    /// The browser process.
    public let pid: pid_t
    private let commands: Int32
    private let answers: Int32
    private let nextID = Atomic<Int>(0)
    private let pending = Mutex<[Int: CheckedContinuation<Data, any Error>]>([:])
    private let sessionID = Mutex<String?>(nil)
    private let consoleLines = Mutex<[String]>([])

    /// What the page wrote to its console (`console.error: …`), the browser's own messages
    /// about it (`log.error: …`, a failed load among them) and uncaught exceptions (`exception: …`).
    public var console: [String] { consoleLines.withLock { $0 } }

    /// The uncaught exceptions among `console`.
    public var exceptions: [String] { console.filter { $0.hasPrefix("exception") } }

    /// The errors among `console`: uncaught exceptions, `console.error` calls and the browser's error messages.
    public var errors: [String] {
        console.filter { $0.hasPrefix("exception") || $0.hasPrefix("console.error") || $0.hasPrefix("log.error") }
    }

    private init(pid: pid_t, commands: Int32, answers: Int32) {
        self.pid = pid
        self.commands = commands
        self.answers = answers
    }

    /// Starts chromium (its own output to `logPath`) with one page attached, at `width`×`height`.
    public static func launch(logPath: String, width: Int = 1280, height: Int = 900) async throws -> HeadlessBrowser {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw Failure(description: "\(executable) is missing: `make test` installs the chromium package")
        }
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("vacancy-chromium-\(UUID().uuidString)").path
        let toBrowser = try Self.makePipe()
        let fromBrowser = try Self.makePipe()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_adddup2(&actions, toBrowser[0], 3)
        posix_spawn_file_actions_adddup2(&actions, fromBrowser[1], 4)
        // Only the DevTools pipe: chromium holding a copy of some other test's socket (a
        // fan-out's end of a stream it means to reset) would keep that socket open.
        closeInheritedDescriptors(&actions, from: 5)
        let arguments = [
            executable, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--user-data-dir=\(profile)", "--window-size=\(width),\(height)", "about:blank",
        ]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, &argv, environ)
        Glibc.close(toBrowser[0])
        Glibc.close(fromBrowser[1])
        guard spawned == 0 else {
            Glibc.close(toBrowser[1])
            Glibc.close(fromBrowser[0])
            throw Failure(description: "could not start chromium: error \(spawned)")
        }
        let browser = HeadlessBrowser(pid: pid, commands: toBrowser[1], answers: fromBrowser[0])
        let reader = Thread { browser.readAnswers() }
        reader.name = "chromium-devtools"
        reader.start()
        try await browser.attachToPage()
        return browser
    }

    /// A pipe whose ends are above fd 10 and close on exec: the child gets only the copies
    /// dup2 puts on 3 and 4.
    private static func makePipe() throws -> [Int32] {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw Failure(description: "pipe failed: errno \(errno)") }
        return ends.map { end in
            let moved = fcntl(end, F_DUPFD_CLOEXEC, 10)
            Glibc.close(end)
            return moved
        }
    }

    private func attachToPage() async throws {
        let targets = try await send("Target.getTargets", session: false)
        let infos = (targets["targetInfos"] as? [[String: Any]]) ?? []
        guard let page = infos.first(where: { $0["type"] as? String == "page" }), let targetID = page["targetId"] as? String else {
            throw Failure(description: "chromium has no page target: \(infos)")
        }
        let attached = try await send("Target.attachToTarget", ["targetId": targetID, "flatten": true], session: false)
        guard let session = attached["sessionId"] as? String else { throw Failure(description: "attaching to the page failed") }
        sessionID.withLock { $0 = session }
        _ = try await send("Page.enable")
        _ = try await send("Runtime.enable")
        // The browser's own messages: a resource that failed to load (a 404) among them.
        _ = try await send("Log.enable")
    }

    /// Sends one DevTools command (to the page, unless `session` is false) and returns its result.
    @discardableResult
    public func send(_ method: String, _ parameters: [String: Any] = [:], session: Bool = true) async throws -> [String: Any] {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        var message: [String: Any] = ["id": id, "method": method, "params": parameters]
        if session, let sessionID = sessionID.withLock({ $0 }) { message["sessionId"] = sessionID }
        var data = try JSONSerialization.data(withJSONObject: message)
        data.append(0)
        let answer = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Data, any Error>) in
            pending.withLock { $0[id] = continuation }
            let written = data.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let count = write(commands, bytes.baseAddress! + offset, bytes.count - offset)
                    if count < 0 {
                        if errno == EINTR { continue }
                        return false
                    }
                    offset += count
                }
                return true
            }
            if !written, let waiting = pending.withLock({ $0.removeValue(forKey: id) }) {
                waiting.resume(throwing: Failure(description: "chromium's command pipe is closed"))
            }
        }
        let object = (try JSONSerialization.jsonObject(with: answer) as? [String: Any]) ?? [:]
        if let error = object["error"] as? [String: Any] {
            throw Failure(description: "\(method) failed: \(error["message"] ?? error)")
        }
        return (object["result"] as? [String: Any]) ?? [:]
    }

    /// Opens `url` in the page.
    public func navigate(to url: String) async throws {
        let result = try await send("Page.navigate", ["url": url])
        if let error = result["errorText"] as? String { throw Failure(description: "navigating to \(url): \(error)") }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its JSON value.
    public func evaluate(_ expression: String) async throws -> Any? {
        let result = try await send("Runtime.evaluate", ["expression": expression, "returnByValue": true, "awaitPromise": true])
        if let exception = result["exceptionDetails"] as? [String: Any] {
            let text = ((exception["exception"] as? [String: Any])?["description"] as? String) ?? "\(exception)"
            throw Failure(description: "evaluating \(expression): \(text)")
        }
        return (result["result"] as? [String: Any])?["value"]
    }

    /// Polls `expression` until it is true or `seconds` pass; returns whether it became true.
    public func waitFor(_ expression: String, within seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        repeat {
            if (try? await evaluate(expression)) as? Bool == true { return true }
            try? await Task.sleep(for: .milliseconds(50))
        } while ContinuousClock.now < deadline
        return (try? await evaluate(expression)) as? Bool == true
    }

    /// Writes a PNG of the page to `path`.
    public func screenshot(to path: String) async throws {
        let result = try await send("Page.captureScreenshot", ["format": "png"])
        guard let base64 = result["data"] as? String, let data = Data(base64Encoded: base64) else {
            throw Failure(description: "no screenshot data")
        }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Ends chromium and waits for it (5 s, then SIGKILL).
    public func close() async {
        Glibc.close(commands)
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<50 {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
        kill(pid, SIGKILL)
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    }

    /// The reader thread: splits the answer pipe on NUL bytes and hands each answer to the
    /// command waiting for it; keeps console output and exceptions.
    private func readAnswers() {
        var buffer = Data()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = read(answers, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            buffer.append(contentsOf: chunk[0..<count])
            while let end = buffer.firstIndex(of: 0) {
                let message = buffer[buffer.startIndex..<end]
                buffer = Data(buffer[(end + 1)...])
                dispatch(Data(message))
            }
        }
        Glibc.close(answers)
        let waiting = pending.withLock { pending in
            defer { pending.removeAll() }
            return Array(pending.values)
        }
        for continuation in waiting { continuation.resume(throwing: Failure(description: "chromium exited")) }
    }

    private func dispatch(_ message: Data) {
        guard let object = try? JSONSerialization.jsonObject(with: message) as? [String: Any] else { return }
        if let id = object["id"] as? Int {
            pending.withLock { $0.removeValue(forKey: id) }?.resume(returning: message)
            return
        }
        let parameters = object["params"] as? [String: Any] ?? [:]
        switch object["method"] as? String {
        case "Runtime.consoleAPICalled":
            let arguments = (parameters["args"] as? [[String: Any]] ?? []).map { "\($0["value"] ?? $0["description"] ?? "")" }
            consoleLines.withLock { $0.append("console.\(parameters["type"] ?? "log"): " + arguments.joined(separator: " ")) }
        case "Runtime.exceptionThrown":
            let details = parameters["exceptionDetails"] as? [String: Any] ?? [:]
            let text = ((details["exception"] as? [String: Any])?["description"] as? String) ?? "\(details["text"] ?? "")"
            consoleLines.withLock { $0.append("exception: " + text) }
        case "Log.entryAdded":
            let entry = parameters["entry"] as? [String: Any] ?? [:]
            let url = (entry["url"] as? String).map { " (\($0))" } ?? ""
            consoleLines.withLock { $0.append("log.\(entry["level"] ?? "info"): \(entry["text"] ?? "")" + url) }
        default:
            break
        }
    }
}
