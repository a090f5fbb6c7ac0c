import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The tests' child processes (PostgreSQL among them) start with standard input, output and
/// error only, however many sockets the test process holds: a PostgreSQL that inherits a
/// thousand descriptors refuses to start.
@Suite struct RunCommandTests {
    @Test func aChildInheritsNoDescriptorBeyondTheStandardThree() async throws {
        var pipes: [[Int32]] = []
        for _ in 0..<20 {
            var ends: [Int32] = [0, 0]
            #expect(pipe(&ends) == 0)
            pipes.append(ends)
        }
        defer {
            for ends in pipes {
                close(ends[0])
                close(ends[1])
            }
        }
        let output = TestEnvironment.outputDirectory.appendingPathComponent("child-fds-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: output) }
        // The shell lists its own descriptors: 0, 1, 2, and the one `ls` reads the directory with.
        let status = try await runCommand(["/bin/sh", "-c", "ls /proc/self/fd"], output: output.path)
        #expect(status == 0)
        let listed = try String(contentsOf: output, encoding: .utf8).split(separator: "\n").compactMap { Int($0) }
        #expect(listed.filter { $0 > 3 }.isEmpty, "the child saw descriptors \(listed)")
        #expect(listed.contains(1), "its output still goes to the file")
    }

    /// Chromium gets its DevTools pipe and nothing else of the test process: a copy of a
    /// fan-out's socket in it kept that socket open after the fan-out reset it.
    @Test func theBrowserInheritsNoDescriptorButItsPipe() async throws {
        let marker = TestEnvironment.outputDirectory.appendingPathComponent("browser-fd-\(UUID().uuidString).txt")
        FileManager.default.createFile(atPath: marker.path, contents: Data())
        defer { try? FileManager.default.removeItem(at: marker) }
        let descriptor = open(marker.path, O_RDONLY)
        #expect(descriptor > 2)
        defer { close(descriptor) }
        let browser = try await HeadlessBrowser.launch(
            logPath: TestEnvironment.outputDirectory.appendingPathComponent("browser-fds.log").path)
        try await withCleanup(
            {
                let entries = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(browser.pid)/fd")
                let targets = entries.compactMap {
                    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(browser.pid)/fd/\($0)")
                }
                #expect(!targets.isEmpty, "chromium's descriptors can be read")
                #expect(!targets.contains(marker.path), "chromium holds the test's open file (among \(targets.count) descriptors)")
            }, cleanup: { await browser.close() })
    }

    /// A child left running blocks and ignores none of the signals a user stops it with,
    /// whatever the test process's threads block, and SIGTERM alone ends it.
    @Test func aChildLeftRunningStopsOnSIGTERM() async throws {
        let child = try ChildProcess(["/bin/sleep", "60"], output: "/dev/null")
        try await withCleanup(
            {
                let status = try String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8)
                let masks = Dictionary(
                    status.split(separator: "\n").compactMap { line -> (String, UInt64)? in
                        let parts = line.split(separator: ":", maxSplits: 1)
                        guard parts.count == 2, let mask = UInt64(parts[1].trimmingCharacters(in: .whitespaces), radix: 16) else {
                            return nil
                        }
                        return (String(parts[0]), mask)
                    }, uniquingKeysWith: { first, _ in first })
                let stopping: UInt64 = 1 << (UInt64(SIGTERM) - 1) | 1 << (UInt64(SIGINT) - 1)
                #expect(masks["SigBlk"] == 0, "the child blocks no signal")
                #expect((masks["SigIgn"] ?? stopping) & stopping == 0, "the child ignores neither SIGTERM nor SIGINT")
                child.send(SIGTERM)
                #expect(await child.waitForExit(seconds: 10), "SIGTERM alone ends it")
                #expect(child.terminationStatus == 128 + SIGTERM)
            }, cleanup: { await child.stop() })
    }
}
