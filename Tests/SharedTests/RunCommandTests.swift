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
        defer { for ends in pipes { close(ends[0]); close(ends[1]) } }
        let output = TestEnvironment.outputDirectory.appendingPathComponent("child-fds-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: output) }
        // The shell lists its own descriptors: 0, 1, 2, and the one `ls` reads the directory with.
        let status = try await runCommand(["/bin/sh", "-c", "ls /proc/self/fd"], output: output.path)
        #expect(status == 0)
        let listed = try String(contentsOf: output, encoding: .utf8).split(separator: "\n").compactMap { Int($0) }
        #expect(listed.filter { $0 > 3 }.isEmpty, "the child saw descriptors \(listed)")
        #expect(listed.contains(1), "its output still goes to the file")
    }
}
