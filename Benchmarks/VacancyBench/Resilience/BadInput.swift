import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Shared

/// Scenario "bad input": schemathesis (generated, negative and stateful cases from the
/// bookings service's own `/openapi.yaml`) must find no 5xx, no undocumented status or body,
/// and no rejected request that changed the database (a check of ours, in
/// `scripts/resilience/schemathesis_hooks.py`). Then `/events` is fuzzed the same way by
/// hand: query strings, headers and Last-Event-ID values, each answered with a stream or a
/// problem+json 4xx, never a 5xx, and the log untouched.
struct BadInput {
    let stack: Stack
    let client: HTTPClient
    let schemathesis: String
    let examples: Int

    func run() async throws -> ScenarioResult {
        let api = RouterAPI(baseURL: stack.routerURL, client: client)
        // Something for the generated cases to find.
        for index in 0..<3 { _ = try await api.createSession(index: 400 + index, capacity: 12) }
        let fuzz = try await runSchemathesis()
        let events = try await fuzzEvents()
        let check = try await InvariantCheck.check(databaseURL: stack.databaseURL)
        let passed = fuzz.exitCode == 0 && fuzz.cases > 0 && events.failures.isEmpty && check.holds
        let line =
            "bad input: schemathesis \(fuzz.summary) (exit \(fuzz.exitCode)); /events fuzz \(events.requests) requests, "
            + "statuses \(events.statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")), "
            + "failures \(events.failures.count)\(events.failures.isEmpty ? "" : ": " + events.failures.prefix(5).joined(separator: "; ")); "
            + check.summary
        return ScenarioResult(
            name: "Bad input", load: "schemathesis on the bookings API (\(fuzz.cases) cases), \(events.requests) fuzzed /events requests",
            faults: "generated, negative and stateful requests; malformed topics, tokens and Last-Event-IDs",
            eventsChecked: check.events, lost: check.staleEvents, duplicated: 0, overCapacity: check.overCapacity, passed: passed,
            line: line)
    }

    struct Fuzz {
        var exitCode: Int32 = -1
        var cases = 0
        var summary = ""
    }

    /// Runs schemathesis against the bookings service directly (the router would only add
    /// its own limits); its output goes to the log folder.
    private func runSchemathesis() async throws -> Fuzz {
        let logPath = (stack.bookings.logPath as NSString).deletingLastPathComponent + "/schemathesis.log"
        let reportPath = (stack.bookings.logPath as NSString).deletingLastPathComponent + "/schemathesis-report"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: schemathesis)
        process.arguments = [
            "run", "http://127.0.0.1:\(stack.bookings.port)/openapi.yaml",
            "--url", "http://127.0.0.1:\(stack.bookings.port)",
            "-H", "Authorization: Bearer \(Stack.apiKey)",
            // Every check but one: positive_data_acceptance expects every schema-valid request to
            // succeed, but some rules span fields and cannot be written in JSON Schema (`to` not
            // before `from`, `ends_at` after `starts_at`, at least one seat), and a reused
            // Idempotency-Key must be a 422 whatever the body.
            "--checks", "all",
            "--exclude-checks", "positive_data_acceptance",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", String(examples),
            "--workers", "1",
            "--seed", "20261122",
            "--suppress-health-check", "all",
            "--report", "junit", "--report-dir", reportPath,
            "--no-color",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["VACANCY_RESILIENCE_DATABASE_URL"] = stack.databaseURL
        environment["SCHEMATHESIS_HOOKS"] = "schemathesis_hooks"
        environment["PYTHONPATH"] = FileManager.default.currentDirectoryPath + "/scripts/resilience"
        process.environment = environment
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = output
        process.standardError = output
        say("resilience: bad input: schemathesis on the bookings API (output in \(logPath))")
        try process.run()
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume()
            }
        }
        try output.close()
        var fuzz = Fuzz()
        fuzz.exitCode = process.terminationStatus
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        // The closing lines, e.g. "Test cases:" and "N generated, N passed" and the summary of failures.
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        if let casesLine = lines.last(where: { $0.hasPrefix("Test cases:") }), let index = lines.lastIndex(of: casesLine),
            index + 1 < lines.count
        {
            fuzz.summary = lines[index + 1]
            fuzz.cases = Int(lines[index + 1].split(separator: " ").first ?? "") ?? 0
        }
        if let failures = lines.last(where: { $0.contains("failures") || $0.contains("passed") }), fuzz.summary.isEmpty {
            fuzz.summary = failures
        }
        if fuzz.exitCode != 0 {
            let tail = lines.suffix(40).joined(separator: "\n")
            say("resilience: bad input: schemathesis failed; the end of its output:\n\(tail)")
        }
        return fuzz
    }

    struct EventsFuzz {
        var requests = 0
        var statuses: [Int: Int] = [:]
        var failures: [String] = []
    }

    /// Malformed subscriptions against the fan-out (through the router): every one is a
    /// problem+json 4xx before any stream byte, or a stream; none is a 5xx or changes the log.
    private func fuzzEvents() async throws -> EventsFuzz {
        let rowsBefore = try await Self.rowCounts(stack.databaseURL)
        var generator = SystemRandomNumberGenerator()
        let topics = [
            "", "availability", "availability.", "availability.2026-13-45", "availability.session.not-a-uuid", "admin", "user.",
            "user.x", "alerts", "nope", "availability.course.", String(repeating: "a", count: 5000), "%00", "%ZZ", "availability%0d%0aX: y",
            "availability.location.Location%20A", "availability.session.00000000-0000-0000-0000-000000000000", "AVAILABILITY",
        ]
        let lastIDs = ["", "abc", "-1", "0", "1", "99999999999999999999999", "1e3", " 5", "5 ", "NaN", "9223372036854775807", "0x10"]
        var result = EventsFuzz()
        for _ in 0..<300 {
            var query: [String] = []
            for _ in 0..<Int.random(in: 0...40, using: &generator) {
                let name = ["topic", "topic", "topic", "last_event_id", "token", "x", ""].randomElement(using: &generator)!
                let value = (name == "last_event_id" ? lastIDs : topics).randomElement(using: &generator)!
                query.append("\(name)=\(value)")
            }
            var request = HTTPClientRequest(url: stack.routerURL + "/events?" + query.joined(separator: "&"))
            if Bool.random(using: &generator) {
                request.headers.add(name: "Last-Event-ID", value: lastIDs.randomElement(using: &generator)!)
            }
            if Int.random(in: 0..<4, using: &generator) == 0 {
                request.headers.add(
                    name: "Authorization", value: ["Bearer", "Bearer x.y.z", "Basic Zm9vOmJhcg==", "Bearer "].randomElement()!)
            }
            result.requests += 1
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: .seconds(5))
            } catch {
                // An invalid URL is refused by the client itself; nothing reached the server.
                result.statuses[0, default: 0] += 1
                continue
            }
            let status = Int(response.status.code)
            result.statuses[status, default: 0] += 1
            let contentType = response.headers.first(name: "Content-Type") ?? ""
            if status == 200 {
                if !contentType.hasPrefix("text/event-stream") { result.failures.append("200 with \(contentType)") }
                continue  // a stream that opened is dropped here
            }
            _ = try? await response.body.collect(upTo: 1 << 20)
            if status >= 500 || !(contentType.hasPrefix("application/problem+json")) {
                result.failures.append("\(status) \(contentType) for ?\(query.joined(separator: "&").prefix(120))")
            }
        }
        if try await Self.rowCounts(stack.databaseURL) != rowsBefore {
            result.failures.append("sessions, bookings or idempotency keys changed while only /events was fuzzed")
        }
        return result
    }

    /// Rows in the tables a request could write (the events log also grows from holds expiring).
    static func rowCounts(_ databaseURL: String) async throws -> [Int] {
        try await StackDatabase.with(databaseURL) { database in
            let row = try await database.rows(
                "SELECT (SELECT count(*) FROM sessions)::int, (SELECT count(*) FROM bookings)::int, (SELECT count(*) FROM idempotency_keys)::int"
            )[0]
            let (sessions, bookings, keys) = try row.decode((Int, Int, Int).self)
            return [sessions, bookings, keys]
        }
    }
}
