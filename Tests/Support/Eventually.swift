/// Polls `condition` every 50 ms for up to `seconds`; whether it came true. Shared by the
/// tests and the resilience suite; a cancelled wait takes one last look and stops.
public func eventually(within seconds: Double = 3, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        do { try await Task.sleep(for: .milliseconds(50)) } catch { break }
    }
    return try await condition()
}
