import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A service waiting for its database at start-up still stops when asked (SIGTERM), as
/// `docker compose stop` and `make stop` ask, instead of waiting to be killed.
@Suite struct StartupShutdownTests {
    @Test(arguments: ["bookings", "availability", "fanout"])
    func aServiceWaitingForItsDatabaseStopsOnSIGTERM(service: String) async throws {
        let binary = URL(fileURLWithPath: LocalStackTests.binDirectory).appendingPathComponent("vacancy-\(service)")
        let log = TestEnvironment.outputDirectory.appendingPathComponent("startup-sigterm-\(service).log")
        try? FileManager.default.removeItem(at: log)
        // Nothing listens on port 1: every connection is refused, so migrations keep retrying.
        let child = try ChildProcess(
            [binary.path],
            environment: [
                "VACANCY_DATABASE_URL": "postgres://postgres@127.0.0.1:1/vacancy",
                "VACANCY_BOOKINGS_PORT": "0", "VACANCY_AVAILABILITY_PORT": "0", "VACANCY_FANOUT_PORT": "0",
                "VACANCY_LOG_LEVEL": "warning",
            ], output: log.path)
        try await withCleanup(
            {
                let retrying = await eventually(within: 30) {
                    ((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("migrations failed, retrying")
                }
                try #require(retrying, "\(service) says it is retrying its migrations (see \(log.path))")
                child.send(SIGTERM)
                let ended = await child.waitForExit(seconds: 10)
                #expect(ended, "\(service) still running 10 s after SIGTERM (see \(log.path))")
            },
            // Whatever happened above, nothing is left running (at once: SIGTERM was tried).
            cleanup: { await child.stop(grace: 0) })
    }
}
